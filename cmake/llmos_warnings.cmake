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
