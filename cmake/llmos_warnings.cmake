# Compile options for llmos's own targets (not third-party code).
add_library(llmos_compile_options INTERFACE)
target_compile_options(llmos_compile_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow=local -Wno-missing-field-initializers>)
# GCC 12 reports false -Wrestrict positives inside libstdc++ string appends (GCC PR 105651).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(llmos_compile_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
endif()
if(LLMOS_WERROR)
  target_compile_options(llmos_compile_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
if(LLMOS_SANITIZE)
  target_compile_options(llmos_compile_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer>)
  target_link_options(llmos_compile_options INTERFACE -fsanitize=address,undefined)
endif()

# A program that uses llmos as an application would: the public headers and the shared library,
# warnings as errors; under LLMOS_SANITIZE it carries the sanitizer runtime the instrumented
# library needs. Examples and the C API test are built this way.
function(llmos_public_api_program target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  target_link_libraries(${target} PRIVATE llmos Threads::Threads)
  if(LLMOS_SANITIZE)
    target_compile_options(${target} PRIVATE
      -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
