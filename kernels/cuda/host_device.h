// LLMOS_HD marks the functions that kernels and CPU tests share: __host__ __device__ when nvcc
// compiles the file, nothing for the host compiler. Such headers then build in every
// configuration, so their math is tested on the CPU even where no GPU is present.
#pragma once

#if defined(__CUDACC__)
#define LLMOS_HD __host__ __device__
#else
#define LLMOS_HD
#endif
