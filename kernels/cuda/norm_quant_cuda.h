// Fused RMSNorm + activation quantization for decode: one pass over each row computes
// h = rms_norm(x) * weight (written to p.y, since callers of fused_matmul read it) and the int8
// activation blocks of h that the decode GEMVs read: 32-value q8 blocks (as
// quantize_q8_act_cuda writes them, for gemv_q8_cuda) or 256-value q8_K blocks (as
// quantize_q8k_act_cuda, for gemv_q8k_cuda). h is bit-identical to rms_norm_cuda's output (the
// same reduction tree, block size and expressions) and the blocks are bit-identical to
// quantizing that h with the separate launchers. Launchers enqueue on `stream`, never allocate
// and never throw; they return the launch status, or cudaErrorInvalidValue for arguments they
// cannot serve.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/q8_block_math.cuh"
#include "kernels/cuda/q8k_block_math.cuh"
#include "kernels/norm.h"

namespace llmos::kernels::cuda {

// p.rows <= kGemvMaxRows, p.dim a positive multiple of 32; act 16-byte aligned,
// q8_act_bytes(p.rows, p.dim) long, act[r * (dim / 32) + b] = block b of row r of h.
cudaError_t rms_norm_quant_q8_cuda(const RmsNormParams& p, Q8ActBlockCuda* act, cudaStream_t stream);

// p.rows <= kGemvMaxRows, p.dim a positive multiple of 256; act 16-byte aligned,
// q8k_act_bytes(p.rows, p.dim) long, act[r * (dim / 256) + b] = block b of row r of h.
cudaError_t rms_norm_quant_q8k_cuda(const RmsNormParams& p, Q8KActBlockCuda* act, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
