# Warning set for our own targets only; third-party headers come in as SYSTEM.
function(improto_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion
    -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ 12 false positives at -O2/-O3: Asio's coroutine frame allocator
    # seen as a new/delete mismatch, and std::string appends as overlapping
    # copies (GCC bug 105651).
    target_compile_options(${target} PRIVATE -Wno-mismatched-new-delete -Wno-restrict)
  endif()
  if(IMPROTO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
