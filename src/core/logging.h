// Library logging is off by default: messages go to a process-wide callback when one is set.
// The CLI installs a callback that prints to stderr.
#pragma once

#include <string_view>

namespace llmos {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using LogCallback = void (*)(LogLevel level, std::string_view message, void* user_data);

void set_log_callback(LogCallback callback, void* user_data);
void log_message(LogLevel level, std::string_view message);

}  // namespace llmos
