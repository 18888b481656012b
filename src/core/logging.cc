#include "core/logging.h"

#include <atomic>
#include <mutex>

namespace llmos {
namespace {

std::mutex g_log_mutex;
LogCallback g_callback = nullptr;
void* g_user_data = nullptr;

}  // namespace

void set_log_callback(LogCallback callback, void* user_data) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_callback = callback;
  g_user_data = user_data;
}

void log_message(LogLevel level, std::string_view message) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_callback != nullptr) g_callback(level, message, g_user_data);
}

}  // namespace llmos
