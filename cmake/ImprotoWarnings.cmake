# Warning set for our own targets only; third-party headers come in as SYSTEM.
function(improto_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion
    -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual)
  if(IMPROTO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
