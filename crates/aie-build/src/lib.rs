//! MLIR-AIE2 kernel build tool library (being written).
