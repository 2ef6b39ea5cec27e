# Warning set for our own targets only; third-party headers come in as SYSTEM.
function(improto_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion
    -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ 12 at -O2 flags Asio's recycling allocator for coroutine frames as
    # a new/delete mismatch (a false positive inside asio/detail/memory.hpp).
    target_compile_options(${target} PRIVATE -Wno-mismatched-new-delete)
  endif()
  if(IMPROTO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
