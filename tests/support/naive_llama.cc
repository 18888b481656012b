#include "support/naive_llama.h"

#include <cmath>
#include <numbers>

#include "quant/quant.h"

namespace llmos::test {

Eigen::MatrixXd NaiveLlama::matrix(const gguf::File& file, const std::string& name) const {
  const gguf::TensorInfo* info = file.find_tensor(name);
  if (info == nullptr) return {};
  const int64_t rows = info->shape.size() == 2 ? info->shape[0] : 1;
  const int64_t cols = info->shape.back();
  const int64_t row_bytes = dtype_row_bytes(info->dtype, cols);
  Eigen::MatrixXd m(rows, cols);
  std::vector<float> buf(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(info->dtype, file.tensor_data(*info) + r * row_bytes, buf.data(), cols);
    for (int64_t c = 0; c < cols; ++c) m(r, c) = buf[static_cast<size_t>(c)];
  }
  return m;
}

Eigen::VectorXd NaiveLlama::vector(const gguf::File& file, const std::string& name) const {
  Eigen::MatrixXd m = matrix(file, name);
  if (m.size() == 0) return {};
  return Eigen::Map<Eigen::VectorXd>(m.data(), m.size());
}

NaiveLlama::NaiveLlama(const gguf::File& file) : config_(ModelConfig::from_gguf(file)) {
  embd_ = matrix(file, "token_embd.weight");
  output_ = matrix(file, "output.weight");
  if (output_.size() == 0) output_ = embd_;
  output_norm_ = vector(file, "output_norm.weight");
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer layer;
    layer.attn_norm = vector(file, p + "attn_norm.weight");
    layer.ffn_norm = vector(file, p + "ffn_norm.weight");
    layer.wq = matrix(file, p + "attn_q.weight");
    layer.wk = matrix(file, p + "attn_k.weight");
    layer.wv = matrix(file, p + "attn_v.weight");
    layer.wo = matrix(file, p + "attn_output.weight");
    layer.bq = vector(file, p + "attn_q.bias");
    layer.bk = vector(file, p + "attn_k.bias");
    layer.bv = vector(file, p + "attn_v.bias");
    layer.gate = matrix(file, p + "ffn_gate.weight");
    layer.up = matrix(file, p + "ffn_up.weight");
    layer.down = matrix(file, p + "ffn_down.weight");
    layers_.push_back(std::move(layer));
  }
  // Rotary frequencies straight from the definitions of each scaling scheme.
  const Eigen::VectorXd factors = vector(file, "rope_freqs.weight");
  const int64_t half = config_.rope_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    double freq = 1.0 / std::pow(static_cast<double>(config_.rope_freq_base),
                                 static_cast<double>(2 * i) / static_cast<double>(config_.rope_dim));
    // Per-dimension factors replace the llama3 formula (they encode it) but combine with
    // linear scaling.
    if (factors.size() > 0) freq /= factors(i);
    if (config_.rope_scaling == RopeScaling::kLinear) {
      freq /= config_.rope_scale_factor;
    } else if (config_.rope_scaling == RopeScaling::kLlama3 && factors.size() == 0) {
      const double wavelen = 2.0 * std::numbers::pi / freq;
      const double old_ctx = static_cast<double>(config_.rope_original_context);
      if (wavelen > old_ctx / config_.rope_low_freq_factor) {
        freq /= config_.rope_scale_factor;
      } else if (wavelen >= old_ctx / config_.rope_high_freq_factor) {
        const double s = (old_ctx / wavelen - config_.rope_low_freq_factor) /
                         (config_.rope_high_freq_factor - config_.rope_low_freq_factor);
        freq = (1.0 - s) * freq / config_.rope_scale_factor + s * freq;
      }
    }
    inv_freq_.push_back(freq);
  }
}

void NaiveLlama::rope(Eigen::VectorXd& head, int64_t pos) const {
  const int64_t half = config_.rope_dim / 2;
  // Decided here from the architecture, not taken from the config under test: qwen2 rotates
  // the two halves of a head, llama (whose q/k rows were permuted at conversion) adjacent pairs.
  const bool neox = config_.architecture == "qwen2";
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq_[static_cast<size_t>(i)];
    const int64_t a = neox ? i : 2 * i;
    const int64_t b = neox ? i + half : 2 * i + 1;
    const double x0 = head(a), x1 = head(b);
    head(a) = x0 * std::cos(angle) - x1 * std::sin(angle);
    head(b) = x0 * std::sin(angle) + x1 * std::cos(angle);
  }
}

Eigen::MatrixXd NaiveLlama::logits(const std::vector<int32_t>& tokens) const {
  const int64_t t_len = static_cast<int64_t>(tokens.size());
  const int64_t hd = config_.head_dim;
  const int64_t group = config_.num_heads / config_.num_kv_heads;
  const double eps = config_.norm_eps;
  auto rms_norm = [eps](const Eigen::MatrixXd& x, const Eigen::VectorXd& w) {
    Eigen::MatrixXd y(x.rows(), x.cols());
    for (int64_t r = 0; r < x.rows(); ++r) {
      const double inv = 1.0 / std::sqrt(x.row(r).squaredNorm() / static_cast<double>(x.cols()) + eps);
      y.row(r) = x.row(r).cwiseProduct(w.transpose()) * inv;
    }
    return y;
  };
  Eigen::MatrixXd x(t_len, config_.dim);
  for (int64_t t = 0; t < t_len; ++t) x.row(t) = embd_.row(tokens[static_cast<size_t>(t)]);

  for (const Layer& L : layers_) {
    const Eigen::MatrixXd h = rms_norm(x, L.attn_norm);
    Eigen::MatrixXd q = h * L.wq.transpose();
    Eigen::MatrixXd k = h * L.wk.transpose();
    Eigen::MatrixXd v = h * L.wv.transpose();
    if (L.bq.size() > 0) {
      q.rowwise() += L.bq.transpose();
      k.rowwise() += L.bk.transpose();
      v.rowwise() += L.bv.transpose();
    }
    for (int64_t t = 0; t < t_len; ++t) {
      for (int64_t hh = 0; hh < config_.num_heads; ++hh) {
        Eigen::VectorXd head = q.block(t, hh * hd, 1, hd).transpose();
        rope(head, t);
        q.block(t, hh * hd, 1, hd) = head.transpose();
      }
      for (int64_t hh = 0; hh < config_.num_kv_heads; ++hh) {
        Eigen::VectorXd head = k.block(t, hh * hd, 1, hd).transpose();
        rope(head, t);
        k.block(t, hh * hd, 1, hd) = head.transpose();
      }
    }
    Eigen::MatrixXd attn(t_len, config_.num_heads * hd);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (int64_t hh = 0; hh < config_.num_heads; ++hh) {
      const int64_t kvh = hh / group;
      const Eigen::MatrixXd qh = q.middleCols(hh * hd, hd);
      const Eigen::MatrixXd kh = k.middleCols(kvh * hd, hd);
      const Eigen::MatrixXd vh = v.middleCols(kvh * hd, hd);
      for (int64_t t = 0; t < t_len; ++t) {
        Eigen::VectorXd scores = kh.topRows(t + 1) * qh.row(t).transpose() * scale;
        scores = (scores.array() - scores.maxCoeff()).exp();
        scores /= scores.sum();
        attn.block(t, hh * hd, 1, hd) = scores.transpose() * vh.topRows(t + 1);
      }
    }
    x += attn * L.wo.transpose();
    const Eigen::MatrixXd f = rms_norm(x, L.ffn_norm);
    const Eigen::MatrixXd g = f * L.gate.transpose();
    const Eigen::MatrixXd u = f * L.up.transpose();
    const Eigen::MatrixXd act = (g.array() / (1.0 + (-g.array()).exp())) * u.array();
    x += act * L.down.transpose();
  }
  return rms_norm(x, output_norm_) * output_.transpose();
}

}  // namespace llmos::test
