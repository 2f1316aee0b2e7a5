/* xrt_shim.h: the C ABI of amanuensis' XRT shim (xrt_shim.cc), the only native surface the
 * Rust crate `xrt-sys` binds.
 *
 * Why a shim: the NPU flow (xrt::hw_context, device.register_xclbin, xrt::runlist) exists only
 * in XRT's C++ API. Every entry point here catches C++ exceptions and reports them as an
 * `xs_status` plus a message in `xs_error`; nothing unwinds across this boundary.
 *
 * Conventions:
 *  - every fallible function returns an `xs_status` and fills `*err` (if non-NULL) on failure;
 *  - handles are opaque, created by `xs_*_open/create/alloc/load` and released by
 *    `xs_*_free` (NULL is accepted and ignored);
 *  - the same header is implemented three ways, chosen at build time: the NPU path
 *    (XRT >= 2.17), the legacy path (older XRT: load_xclbin + kernel by uuid) and a stub
 *    (no XRT found) whose every call fails with XS_ERR_NOT_BUILT.
 *
 * This header is pure C and includes no XRT header, so bindings do not depend on XRT.
 * Regenerate the Rust bindings with `cargo xtask bindgen` after editing it.
 */
#ifndef AMANUENSIS_XRT_SHIM_H
#define AMANUENSIS_XRT_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every fallible entry point. */
typedef int32_t xs_status;
#define XS_OK 0
/* XRT threw an exception; the message is its what(). */
#define XS_ERR_XRT 1
/* The shim was built without XRT (stub): nothing can run. */
#define XS_ERR_NOT_BUILT 2
/* The XRT this shim was built against lacks the feature (e.g. runlist before 2.18). */
#define XS_ERR_UNSUPPORTED 3
/* A caller error: NULL handle, index out of range, size too large... */
#define XS_ERR_INVALID_ARGUMENT 4
/* A non-standard C++ exception (not derived from std::exception). */
#define XS_ERR_UNKNOWN 5

/* Length of the message buffer in `xs_error` (messages are truncated, NUL terminated). */
#define XS_MESSAGE_LEN 1024

typedef struct xs_error {
  xs_status status;
  char message[XS_MESSAGE_LEN];
} xs_error;

/* Which implementation was compiled. */
#define XS_BACKEND_STUB 0
#define XS_BACKEND_LEGACY 1
#define XS_BACKEND_NPU 2

typedef struct xs_build_info {
  /* XS_BACKEND_*. */
  int32_t backend;
  /* XRT version the shim was compiled against (0.0.0 for the stub). */
  uint32_t xrt_major;
  uint32_t xrt_minor;
  uint32_t xrt_patch;
  /* 1 when xrt::hw_context / register_xclbin are compiled in (NPU path). */
  int32_t has_hw_context;
  /* 1 when xrt::runlist is compiled in. */
  int32_t has_runlist;
} xs_build_info;

/* Buffer-object flags (values of XRT's XRT_BO_FLAGS_*; the memory group is separate). */
#define XS_BO_FLAGS_NORMAL 0u
#define XS_BO_FLAGS_CACHEABLE (1u << 24)
#define XS_BO_FLAGS_DEV_ONLY (1u << 28)
#define XS_BO_FLAGS_HOST_ONLY (1u << 29)

/* Sync directions (values of XRT's xclBOSyncDirection). */
#define XS_SYNC_TO_DEVICE 0
#define XS_SYNC_FROM_DEVICE 1

/* Command states returned by xs_run_wait / xs_run_state (values of XRT's ert_cmd_state). */
#define XS_CMD_STATE_NEW 1
#define XS_CMD_STATE_QUEUED 2
#define XS_CMD_STATE_RUNNING 3
#define XS_CMD_STATE_COMPLETED 4
#define XS_CMD_STATE_ERROR 5
#define XS_CMD_STATE_ABORT 6
#define XS_CMD_STATE_SUBMITTED 7
#define XS_CMD_STATE_TIMEOUT 8
#define XS_CMD_STATE_NORESPONSE 9

typedef struct xs_device xs_device;
typedef struct xs_xclbin xs_xclbin;
typedef struct xs_hw_context xs_hw_context;
typedef struct xs_kernel xs_kernel;
typedef struct xs_bo xs_bo;
typedef struct xs_run xs_run;
typedef struct xs_runlist xs_runlist;

/* Build-time facts; never fails. */
void xs_build_info_get(xs_build_info *out);

/* Number of devices XRT can see. */
xs_status xs_device_count(uint32_t *out, xs_error *err);

/* Devices. */
xs_status xs_device_open(uint32_t index, xs_device **out, xs_error *err);
/* The device's name (xrt::info::device::name), NUL terminated, truncated to `len`. */
xs_status xs_device_name(const xs_device *dev, char *buf, size_t len, xs_error *err);
void xs_device_free(xs_device *dev);

/* xclbin files. */
xs_status xs_xclbin_load(const char *path, xs_xclbin **out, xs_error *err);
/* The xclbin's 16-byte uuid. */
xs_status xs_xclbin_uuid(const xs_xclbin *xclbin, uint8_t out[16], xs_error *err);
xs_status xs_xclbin_kernel_count(const xs_xclbin *xclbin, uint32_t *out, xs_error *err);
xs_status xs_xclbin_kernel_name(const xs_xclbin *xclbin, uint32_t index, char *buf, size_t len,
                                xs_error *err);
void xs_xclbin_free(xs_xclbin *xclbin);

/* Makes the xclbin known to the device: device.register_xclbin (NPU path) or
 * device.load_xclbin (legacy path). */
xs_status xs_device_register_xclbin(xs_device *dev, const xs_xclbin *xclbin, xs_error *err);

/* A hardware context on a registered xclbin. The legacy path has no xrt::hw_context: its
 * context records the device and uuid so that kernels are opened by uuid. */
xs_status xs_hw_context_create(xs_device *dev, const xs_xclbin *xclbin, xs_hw_context **out,
                               xs_error *err);
void xs_hw_context_free(xs_hw_context *ctx);

/* Kernels. */
xs_status xs_kernel_open(xs_hw_context *ctx, const char *name, xs_kernel **out, xs_error *err);
/* Memory group of kernel argument `arg` (for xs_bo_alloc). */
xs_status xs_kernel_group_id(const xs_kernel *kernel, int32_t arg, int32_t *out, xs_error *err);
void xs_kernel_free(xs_kernel *kernel);

/* Buffer objects. */
xs_status xs_bo_alloc(xs_device *dev, size_t size, uint32_t flags, int32_t group, xs_bo **out,
                      xs_error *err);
/* Host pointer of the buffer (valid until xs_bo_free). */
xs_status xs_bo_map(xs_bo *bo, void **out, xs_error *err);
size_t xs_bo_size(const xs_bo *bo);
xs_status xs_bo_address(const xs_bo *bo, uint64_t *out, xs_error *err);
xs_status xs_bo_write(xs_bo *bo, const void *src, size_t size, size_t offset, xs_error *err);
xs_status xs_bo_read(xs_bo *bo, void *dst, size_t size, size_t offset, xs_error *err);
/* direction: XS_SYNC_TO_DEVICE or XS_SYNC_FROM_DEVICE. */
xs_status xs_bo_sync(xs_bo *bo, int32_t direction, size_t size, size_t offset, xs_error *err);
void xs_bo_free(xs_bo *bo);

/* Runs. */
xs_status xs_run_create(const xs_kernel *kernel, xs_run **out, xs_error *err);
xs_status xs_run_set_arg_bo(xs_run *run, int32_t index, const xs_bo *bo, xs_error *err);
xs_status xs_run_set_arg_u32(xs_run *run, int32_t index, uint32_t value, xs_error *err);
xs_status xs_run_set_arg_u64(xs_run *run, int32_t index, uint64_t value, xs_error *err);
xs_status xs_run_start(xs_run *run, xs_error *err);
/* Waits up to timeout_ms (0: no timeout) and stores the command state (XS_CMD_STATE_*). */
xs_status xs_run_wait(xs_run *run, uint32_t timeout_ms, int32_t *state, xs_error *err);
xs_status xs_run_state(const xs_run *run, int32_t *state, xs_error *err);
void xs_run_free(xs_run *run);

/* Run lists: runs executed in order as one submission (XRT >= 2.18; otherwise every call
 * returns XS_ERR_UNSUPPORTED). */
xs_status xs_runlist_create(xs_hw_context *ctx, xs_runlist **out, xs_error *err);
xs_status xs_runlist_add(xs_runlist *list, xs_run *run, xs_error *err);
xs_status xs_runlist_execute(xs_runlist *list, xs_error *err);
/* Waits up to timeout_ms (0: no timeout); *completed is 1 when every run completed, 0 on
 * timeout. A failed run is reported as XS_ERR_XRT with its state in the message. */
xs_status xs_runlist_wait(xs_runlist *list, uint32_t timeout_ms, int32_t *completed,
                          xs_error *err);
xs_status xs_runlist_reset(xs_runlist *list, xs_error *err);
void xs_runlist_free(xs_runlist *list);

#ifdef __cplusplus
}
#endif

#endif /* AMANUENSIS_XRT_SHIM_H */
