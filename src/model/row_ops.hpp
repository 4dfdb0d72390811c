// Elementwise kernels over rows of float32 activations for the row decoder (private to the model module):
// AVX2+FMA where the CPU has it, portable otherwise. Each row's result depends only on that row.
#pragma once

#include <cstdint>

namespace ctm::model::detail {

// y[r] = w * (x[r] * (1 / sqrt(mean(x[r]^2) + eps))), as Hugging Face's LlamaRMSNorm in float32.
void rms_norm_rows(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* y);

// Rotate-half RoPE in place on `heads` heads of head_dim floats at the start of each row (row stride ld):
// x * cos + rotate_half(x) * sin with cos/sin [rows, head_dim].
void rope_rows(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t ld, const float* cos,
               const float* sin);

// out[r] = silu(g) * u where gu[r] = [g (dim floats), u (dim floats)].
void silu_mul_rows(const float* gu, int64_t rows, int64_t dim, float* out);

}  // namespace ctm::model::detail
