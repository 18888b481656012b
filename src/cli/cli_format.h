// Small helpers shared by the subcommands: how sizes and shapes are printed, and how the
// options every model-running command takes are read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/args.h"
#include "core/device.h"
#include "core/dtype.h"
#include "sample/sampler.h"

namespace llmos::cli {

// "512 B", "1.50 KiB", "3.25 GiB".
std::string human_bytes(double bytes);
// "[512, 64]".
std::string shape_string(const std::vector<int64_t>& shape);
// The --kv-dtype option: f16 (default), bf16 or f32; UsageError otherwise.
DType parse_kv_dtype(const Args& args);
// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n (the seed is the
// caller's: commands choose it differently); UsageError naming a bad value.
SamplingParams parse_sampling_options(const Args& args);
// --device: cpu (default) or cuda[:N]; UsageError naming a bad value.
Device parse_device_option(const Args& args);

}  // namespace llmos::cli
