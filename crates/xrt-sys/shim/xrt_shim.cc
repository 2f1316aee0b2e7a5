// xrt_shim.cc: implementation of the C ABI in xrt_shim.h over XRT's C++ API.
//
// Three builds of this one file, selected by build.rs:
//   XS_WITH_XRT=0                 stub: every call fails with XS_ERR_NOT_BUILT;
//   XS_WITH_XRT=1, XS_XRT_NPU=0   legacy XRT (< 2.17): device.load_xclbin + kernel by uuid;
//   XS_WITH_XRT=1, XS_XRT_NPU=1   NPU XRT (>= 2.17): register_xclbin + xrt::hw_context.
// XS_XRT_RUNLIST=1 additionally compiles xrt::runlist (XRT >= 2.18 headers).
//
// Every entry point is wrapped in `guarded`, which turns any C++ exception into a status and
// a message: exceptions must never unwind into Rust.

#include "xrt_shim.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#ifndef XS_WITH_XRT
#define XS_WITH_XRT 0
#endif
#ifndef XS_XRT_NPU
#define XS_XRT_NPU 0
#endif
#ifndef XS_XRT_RUNLIST
#define XS_XRT_RUNLIST 0
#endif
#ifndef XS_XRT_MAJOR
#define XS_XRT_MAJOR 0
#define XS_XRT_MINOR 0
#define XS_XRT_PATCH 0
#endif

namespace {

void set_error(xs_error *err, xs_status status, const char *message) {
  if (err == nullptr) return;
  err->status = status;
  std::snprintf(err->message, XS_MESSAGE_LEN, "%s", message);
}

void clear_error(xs_error *err) {
  if (err == nullptr) return;
  err->status = XS_OK;
  err->message[0] = '\0';
}

// Runs `body` (which returns an xs_status) and converts every exception into a status.
template <typename F> xs_status guarded(xs_error *err, F &&body) noexcept {
  clear_error(err);
  try {
    return body();
  } catch (const std::exception &e) {
    set_error(err, XS_ERR_XRT, e.what());
    return XS_ERR_XRT;
  } catch (...) {
    set_error(err, XS_ERR_UNKNOWN, "unknown C++ exception from XRT");
    return XS_ERR_UNKNOWN;
  }
}

[[maybe_unused]] xs_status invalid(xs_error *err, const char *what) {
  set_error(err, XS_ERR_INVALID_ARGUMENT, what);
  return XS_ERR_INVALID_ARGUMENT;
}

[[maybe_unused]] void copy_string(const std::string &s, char *buf, size_t len) {
  if (buf == nullptr || len == 0) return;
  std::snprintf(buf, len, "%s", s.c_str());
}

} // namespace

extern "C" void xs_build_info_get(xs_build_info *out) {
  if (out == nullptr) return;
#if XS_WITH_XRT
  out->backend = XS_XRT_NPU ? XS_BACKEND_NPU : XS_BACKEND_LEGACY;
#else
  out->backend = XS_BACKEND_STUB;
#endif
  out->xrt_major = XS_XRT_MAJOR;
  out->xrt_minor = XS_XRT_MINOR;
  out->xrt_patch = XS_XRT_PATCH;
  out->has_hw_context = XS_XRT_NPU;
  out->has_runlist = XS_XRT_RUNLIST;
}

#if !XS_WITH_XRT
// ------------------------------------------------------------------------------------ stub

namespace {
const char *const NOT_BUILT =
    "XRT not found at build time: install XRT >= 2.17 and the amdxdna driver (see docs/NPU.md)";
xs_status not_built(xs_error *err) {
  set_error(err, XS_ERR_NOT_BUILT, NOT_BUILT);
  return XS_ERR_NOT_BUILT;
}
} // namespace

extern "C" {
xs_status xs_device_count(uint32_t *out, xs_error *err) {
  if (out) *out = 0;
  return not_built(err);
}
xs_status xs_device_open(uint32_t, xs_device **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
xs_status xs_device_name(const xs_device *, char *, size_t, xs_error *err) { return not_built(err); }
void xs_device_free(xs_device *) {}
xs_status xs_xclbin_load(const char *, xs_xclbin **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
xs_status xs_xclbin_uuid(const xs_xclbin *, uint8_t *, xs_error *err) { return not_built(err); }
xs_status xs_xclbin_kernel_count(const xs_xclbin *, uint32_t *, xs_error *err) { return not_built(err); }
xs_status xs_xclbin_kernel_name(const xs_xclbin *, uint32_t, char *, size_t, xs_error *err) {
  return not_built(err);
}
void xs_xclbin_free(xs_xclbin *) {}
xs_status xs_device_register_xclbin(xs_device *, const xs_xclbin *, xs_error *err) { return not_built(err); }
xs_status xs_hw_context_create(xs_device *, const xs_xclbin *, xs_hw_context **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
void xs_hw_context_free(xs_hw_context *) {}
xs_status xs_kernel_open(xs_hw_context *, const char *, xs_kernel **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
xs_status xs_kernel_group_id(const xs_kernel *, int32_t, int32_t *, xs_error *err) { return not_built(err); }
void xs_kernel_free(xs_kernel *) {}
xs_status xs_bo_alloc(xs_device *, size_t, uint32_t, int32_t, xs_bo **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
xs_status xs_bo_map(xs_bo *, void **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
size_t xs_bo_size(const xs_bo *) { return 0; }
xs_status xs_bo_address(const xs_bo *, uint64_t *, xs_error *err) { return not_built(err); }
xs_status xs_bo_write(xs_bo *, const void *, size_t, size_t, xs_error *err) { return not_built(err); }
xs_status xs_bo_read(xs_bo *, void *, size_t, size_t, xs_error *err) { return not_built(err); }
xs_status xs_bo_sync(xs_bo *, int32_t, size_t, size_t, xs_error *err) { return not_built(err); }
void xs_bo_free(xs_bo *) {}
xs_status xs_run_create(const xs_kernel *, xs_run **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
xs_status xs_run_set_arg_bo(xs_run *, int32_t, const xs_bo *, xs_error *err) { return not_built(err); }
xs_status xs_run_set_arg_u32(xs_run *, int32_t, uint32_t, xs_error *err) { return not_built(err); }
xs_status xs_run_set_arg_u64(xs_run *, int32_t, uint64_t, xs_error *err) { return not_built(err); }
xs_status xs_run_start(xs_run *, xs_error *err) { return not_built(err); }
xs_status xs_run_wait(xs_run *, uint32_t, int32_t *, xs_error *err) { return not_built(err); }
xs_status xs_run_state(const xs_run *, int32_t *, xs_error *err) { return not_built(err); }
void xs_run_free(xs_run *) {}
xs_status xs_runlist_create(xs_hw_context *, xs_runlist **out, xs_error *err) {
  if (out) *out = nullptr;
  return not_built(err);
}
xs_status xs_runlist_add(xs_runlist *, xs_run *, xs_error *err) { return not_built(err); }
xs_status xs_runlist_execute(xs_runlist *, xs_error *err) { return not_built(err); }
xs_status xs_runlist_wait(xs_runlist *, uint32_t, int32_t *, xs_error *err) { return not_built(err); }
xs_status xs_runlist_reset(xs_runlist *, xs_error *err) { return not_built(err); }
void xs_runlist_free(xs_runlist *) {}
} // extern "C"

#else
// ------------------------------------------------------------------------------- real XRT

#include <chrono>
#include <vector>

#include "xrt/xrt_bo.h"
#include "xrt/xrt_device.h"
#include "xrt/xrt_kernel.h"

// The xclbin and system headers moved under xrt/experimental in later releases.
#if __has_include("xrt/experimental/xrt_xclbin.h")
#include "xrt/experimental/xrt_xclbin.h"
#else
#include "experimental/xrt_xclbin.h"
#endif
#if __has_include("xrt/experimental/xrt_system.h")
#include "xrt/experimental/xrt_system.h"
#else
#include "experimental/xrt_system.h"
#endif

#if XS_XRT_NPU
#include "xrt/xrt_hw_context.h"
#endif
#if XS_XRT_RUNLIST
#include "xrt/experimental/xrt_kernel.h"
#endif

struct xs_device {
  xrt::device device;
};
struct xs_xclbin {
  xrt::xclbin xclbin;
};
struct xs_hw_context {
  xrt::device device;
  xrt::uuid uuid;
#if XS_XRT_NPU
  xrt::hw_context context;
#endif
};
struct xs_kernel {
  xrt::kernel kernel;
};
struct xs_bo {
  xrt::bo bo;
};
struct xs_run {
  xrt::run run;
};
struct xs_runlist {
#if XS_XRT_RUNLIST
  xrt::runlist list;
#else
  int unused;
#endif
};

namespace {
[[maybe_unused]] xs_status unsupported(xs_error *err, const char *what) {
  set_error(err, XS_ERR_UNSUPPORTED, what);
  return XS_ERR_UNSUPPORTED;
}
} // namespace

extern "C" {

xs_status xs_device_count(uint32_t *out, xs_error *err) {
  return guarded(err, [&] {
    if (out == nullptr) return invalid(err, "xs_device_count: out is NULL");
    *out = xrt::system::enumerate_devices();
    return XS_OK;
  });
}

xs_status xs_device_open(uint32_t index, xs_device **out, xs_error *err) {
  return guarded(err, [&] {
    if (out == nullptr) return invalid(err, "xs_device_open: out is NULL");
    *out = nullptr;
    // Checked first so that a machine without devices gets a precise message instead of
    // whatever the driver layer throws for a missing index.
    unsigned int count = xrt::system::enumerate_devices();
    if (index >= count) {
      char msg[160];
      std::snprintf(msg, sizeof msg,
                    "no XRT device %u: XRT sees %u device(s) (is the amdxdna driver loaded?)",
                    index, count);
      set_error(err, XS_ERR_INVALID_ARGUMENT, msg);
      return XS_ERR_INVALID_ARGUMENT;
    }
    *out = new xs_device{xrt::device(index)};
    return XS_OK;
  });
}

xs_status xs_device_name(const xs_device *dev, char *buf, size_t len, xs_error *err) {
  return guarded(err, [&] {
    if (dev == nullptr) return invalid(err, "xs_device_name: device is NULL");
    copy_string(dev->device.get_info<xrt::info::device::name>(), buf, len);
    return XS_OK;
  });
}

void xs_device_free(xs_device *dev) { delete dev; }

xs_status xs_xclbin_load(const char *path, xs_xclbin **out, xs_error *err) {
  return guarded(err, [&] {
    if (path == nullptr || out == nullptr) return invalid(err, "xs_xclbin_load: NULL argument");
    *out = nullptr;
    *out = new xs_xclbin{xrt::xclbin(std::string(path))};
    return XS_OK;
  });
}

xs_status xs_xclbin_uuid(const xs_xclbin *xclbin, uint8_t out[16], xs_error *err) {
  return guarded(err, [&] {
    if (xclbin == nullptr || out == nullptr) return invalid(err, "xs_xclbin_uuid: NULL argument");
    xrt::uuid uuid = xclbin->xclbin.get_uuid();
    std::memcpy(out, uuid.get(), 16);
    return XS_OK;
  });
}

xs_status xs_xclbin_kernel_count(const xs_xclbin *xclbin, uint32_t *out, xs_error *err) {
  return guarded(err, [&] {
    if (xclbin == nullptr || out == nullptr) return invalid(err, "xs_xclbin_kernel_count: NULL argument");
    *out = static_cast<uint32_t>(xclbin->xclbin.get_kernels().size());
    return XS_OK;
  });
}

xs_status xs_xclbin_kernel_name(const xs_xclbin *xclbin, uint32_t index, char *buf, size_t len,
                                xs_error *err) {
  return guarded(err, [&] {
    if (xclbin == nullptr) return invalid(err, "xs_xclbin_kernel_name: xclbin is NULL");
    auto kernels = xclbin->xclbin.get_kernels();
    if (index >= kernels.size()) return invalid(err, "xs_xclbin_kernel_name: index out of range");
    copy_string(kernels[index].get_name(), buf, len);
    return XS_OK;
  });
}

void xs_xclbin_free(xs_xclbin *xclbin) { delete xclbin; }

xs_status xs_device_register_xclbin(xs_device *dev, const xs_xclbin *xclbin, xs_error *err) {
  return guarded(err, [&] {
    if (dev == nullptr || xclbin == nullptr) return invalid(err, "xs_device_register_xclbin: NULL argument");
#if XS_XRT_NPU
    dev->device.register_xclbin(xclbin->xclbin);
#else
    dev->device.load_xclbin(xclbin->xclbin);
#endif
    return XS_OK;
  });
}

xs_status xs_hw_context_create(xs_device *dev, const xs_xclbin *xclbin, xs_hw_context **out,
                               xs_error *err) {
  return guarded(err, [&] {
    if (dev == nullptr || xclbin == nullptr || out == nullptr)
      return invalid(err, "xs_hw_context_create: NULL argument");
    *out = nullptr;
    xrt::uuid uuid = xclbin->xclbin.get_uuid();
#if XS_XRT_NPU
    *out = new xs_hw_context{dev->device, uuid, xrt::hw_context(dev->device, uuid)};
#else
    *out = new xs_hw_context{dev->device, uuid};
#endif
    return XS_OK;
  });
}

void xs_hw_context_free(xs_hw_context *ctx) { delete ctx; }

xs_status xs_kernel_open(xs_hw_context *ctx, const char *name, xs_kernel **out, xs_error *err) {
  return guarded(err, [&] {
    if (ctx == nullptr || name == nullptr || out == nullptr) return invalid(err, "xs_kernel_open: NULL argument");
    *out = nullptr;
#if XS_XRT_NPU
    *out = new xs_kernel{xrt::kernel(ctx->context, std::string(name))};
#else
    *out = new xs_kernel{xrt::kernel(ctx->device, ctx->uuid, std::string(name))};
#endif
    return XS_OK;
  });
}

xs_status xs_kernel_group_id(const xs_kernel *kernel, int32_t arg, int32_t *out, xs_error *err) {
  return guarded(err, [&] {
    if (kernel == nullptr || out == nullptr) return invalid(err, "xs_kernel_group_id: NULL argument");
    *out = static_cast<int32_t>(kernel->kernel.group_id(arg));
    return XS_OK;
  });
}

void xs_kernel_free(xs_kernel *kernel) { delete kernel; }

xs_status xs_bo_alloc(xs_device *dev, size_t size, uint32_t flags, int32_t group, xs_bo **out,
                      xs_error *err) {
  return guarded(err, [&] {
    if (dev == nullptr || out == nullptr) return invalid(err, "xs_bo_alloc: NULL argument");
    *out = nullptr;
    *out = new xs_bo{xrt::bo(dev->device, size, static_cast<xrt::bo::flags>(flags),
                             static_cast<xrt::memory_group>(group))};
    return XS_OK;
  });
}

xs_status xs_bo_map(xs_bo *bo, void **out, xs_error *err) {
  return guarded(err, [&] {
    if (bo == nullptr || out == nullptr) return invalid(err, "xs_bo_map: NULL argument");
    *out = bo->bo.map();
    return XS_OK;
  });
}

size_t xs_bo_size(const xs_bo *bo) {
  if (bo == nullptr) return 0;
  try {
    return bo->bo.size();
  } catch (...) {
    return 0;
  }
}

xs_status xs_bo_address(const xs_bo *bo, uint64_t *out, xs_error *err) {
  return guarded(err, [&] {
    if (bo == nullptr || out == nullptr) return invalid(err, "xs_bo_address: NULL argument");
    *out = bo->bo.address();
    return XS_OK;
  });
}

xs_status xs_bo_write(xs_bo *bo, const void *src, size_t size, size_t offset, xs_error *err) {
  return guarded(err, [&] {
    if (bo == nullptr || (src == nullptr && size > 0)) return invalid(err, "xs_bo_write: NULL argument");
    if (offset > bo->bo.size() || size > bo->bo.size() - offset)
      return invalid(err, "xs_bo_write: range exceeds the buffer");
    bo->bo.write(src, size, offset);
    return XS_OK;
  });
}

xs_status xs_bo_read(xs_bo *bo, void *dst, size_t size, size_t offset, xs_error *err) {
  return guarded(err, [&] {
    if (bo == nullptr || (dst == nullptr && size > 0)) return invalid(err, "xs_bo_read: NULL argument");
    if (offset > bo->bo.size() || size > bo->bo.size() - offset)
      return invalid(err, "xs_bo_read: range exceeds the buffer");
    bo->bo.read(dst, size, offset);
    return XS_OK;
  });
}

xs_status xs_bo_sync(xs_bo *bo, int32_t direction, size_t size, size_t offset, xs_error *err) {
  return guarded(err, [&] {
    if (bo == nullptr) return invalid(err, "xs_bo_sync: buffer is NULL");
    if (direction != XS_SYNC_TO_DEVICE && direction != XS_SYNC_FROM_DEVICE)
      return invalid(err, "xs_bo_sync: direction must be XS_SYNC_TO_DEVICE or XS_SYNC_FROM_DEVICE");
    if (offset > bo->bo.size() || size > bo->bo.size() - offset)
      return invalid(err, "xs_bo_sync: range exceeds the buffer");
    bo->bo.sync(direction == XS_SYNC_TO_DEVICE ? XCL_BO_SYNC_BO_TO_DEVICE : XCL_BO_SYNC_BO_FROM_DEVICE,
                size, offset);
    return XS_OK;
  });
}

void xs_bo_free(xs_bo *bo) { delete bo; }

xs_status xs_run_create(const xs_kernel *kernel, xs_run **out, xs_error *err) {
  return guarded(err, [&] {
    if (kernel == nullptr || out == nullptr) return invalid(err, "xs_run_create: NULL argument");
    *out = nullptr;
    *out = new xs_run{xrt::run(kernel->kernel)};
    return XS_OK;
  });
}

xs_status xs_run_set_arg_bo(xs_run *run, int32_t index, const xs_bo *bo, xs_error *err) {
  return guarded(err, [&] {
    if (run == nullptr || bo == nullptr) return invalid(err, "xs_run_set_arg_bo: NULL argument");
    run->run.set_arg(index, bo->bo);
    return XS_OK;
  });
}

xs_status xs_run_set_arg_u32(xs_run *run, int32_t index, uint32_t value, xs_error *err) {
  return guarded(err, [&] {
    if (run == nullptr) return invalid(err, "xs_run_set_arg_u32: run is NULL");
    run->run.set_arg(index, value);
    return XS_OK;
  });
}

xs_status xs_run_set_arg_u64(xs_run *run, int32_t index, uint64_t value, xs_error *err) {
  return guarded(err, [&] {
    if (run == nullptr) return invalid(err, "xs_run_set_arg_u64: run is NULL");
    run->run.set_arg(index, value);
    return XS_OK;
  });
}

xs_status xs_run_start(xs_run *run, xs_error *err) {
  return guarded(err, [&] {
    if (run == nullptr) return invalid(err, "xs_run_start: run is NULL");
    run->run.start();
    return XS_OK;
  });
}

xs_status xs_run_wait(xs_run *run, uint32_t timeout_ms, int32_t *state, xs_error *err) {
  return guarded(err, [&] {
    if (run == nullptr || state == nullptr) return invalid(err, "xs_run_wait: NULL argument");
    *state = static_cast<int32_t>(run->run.wait(std::chrono::milliseconds(timeout_ms)));
    return XS_OK;
  });
}

xs_status xs_run_state(const xs_run *run, int32_t *state, xs_error *err) {
  return guarded(err, [&] {
    if (run == nullptr || state == nullptr) return invalid(err, "xs_run_state: NULL argument");
    *state = static_cast<int32_t>(run->run.state());
    return XS_OK;
  });
}

void xs_run_free(xs_run *run) { delete run; }

#if XS_XRT_RUNLIST
xs_status xs_runlist_create(xs_hw_context *ctx, xs_runlist **out, xs_error *err) {
  return guarded(err, [&] {
    if (ctx == nullptr || out == nullptr) return invalid(err, "xs_runlist_create: NULL argument");
    *out = nullptr;
    *out = new xs_runlist{xrt::runlist(ctx->context)};
    return XS_OK;
  });
}

xs_status xs_runlist_add(xs_runlist *list, xs_run *run, xs_error *err) {
  return guarded(err, [&] {
    if (list == nullptr || run == nullptr) return invalid(err, "xs_runlist_add: NULL argument");
    list->list.add(run->run);
    return XS_OK;
  });
}

xs_status xs_runlist_execute(xs_runlist *list, xs_error *err) {
  return guarded(err, [&] {
    if (list == nullptr) return invalid(err, "xs_runlist_execute: list is NULL");
    list->list.execute();
    return XS_OK;
  });
}

xs_status xs_runlist_wait(xs_runlist *list, uint32_t timeout_ms, int32_t *completed, xs_error *err) {
  return guarded(err, [&] {
    if (list == nullptr || completed == nullptr) return invalid(err, "xs_runlist_wait: NULL argument");
    try {
      auto status = list->list.wait(std::chrono::milliseconds(timeout_ms));
      *completed = status == std::cv_status::no_timeout ? 1 : 0;
    } catch (const xrt::runlist::command_error &e) {
      char msg[XS_MESSAGE_LEN];
      std::snprintf(msg, sizeof msg, "run list command failed in state %d: %s",
                    static_cast<int>(e.get_command_state()), e.what());
      set_error(err, XS_ERR_XRT, msg);
      return XS_ERR_XRT;
    }
    return XS_OK;
  });
}

xs_status xs_runlist_reset(xs_runlist *list, xs_error *err) {
  return guarded(err, [&] {
    if (list == nullptr) return invalid(err, "xs_runlist_reset: list is NULL");
    list->list.reset();
    return XS_OK;
  });
}

void xs_runlist_free(xs_runlist *list) { delete list; }
#else
namespace {
const char *const NO_RUNLIST = "xrt::runlist needs XRT >= 2.18; this build's XRT has none";
}
xs_status xs_runlist_create(xs_hw_context *, xs_runlist **out, xs_error *err) {
  if (out) *out = nullptr;
  return unsupported(err, NO_RUNLIST);
}
xs_status xs_runlist_add(xs_runlist *, xs_run *, xs_error *err) { return unsupported(err, NO_RUNLIST); }
xs_status xs_runlist_execute(xs_runlist *, xs_error *err) { return unsupported(err, NO_RUNLIST); }
xs_status xs_runlist_wait(xs_runlist *, uint32_t, int32_t *, xs_error *err) {
  return unsupported(err, NO_RUNLIST);
}
xs_status xs_runlist_reset(xs_runlist *, xs_error *err) { return unsupported(err, NO_RUNLIST); }
void xs_runlist_free(xs_runlist *list) { delete list; }
#endif

} // extern "C"

#endif // XS_WITH_XRT
