# The Release setup every benchmark program shares, in one place.
#
#   include(<bench>/lib/bench.cmake)
#   improto_bench_project()      only at the top of a bench build (bench/, or a
#                                suite configured on its own): Release, C++20,
#                                executables in <build>/bin, the library and its
#                                servers as a user builds them
#   improto_bench_program(NAME SOURCES... [LINK LIBS...])
#                                a benchmark program: warnings on, bench/lib on
#                                its include path (proc_cpu.hpp, cli.hpp, ...),
#                                linked with LIBS (improto targets or others)
include_guard(GLOBAL)

set(IMPROTO_BENCH_LIB_DIR "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(IMPROTO_BENCH_REPO "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

macro(improto_bench_project)
  if(NOT CMAKE_BUILD_TYPE)
    set(CMAKE_BUILD_TYPE Release CACHE STRING "" FORCE)
  endif()
  set(CMAKE_CXX_STANDARD 20)
  set(CMAKE_CXX_STANDARD_REQUIRED ON)
  set(CMAKE_CXX_EXTENSIONS OFF)
  set(CMAKE_RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/bin")
  # Tests off; a new compiler warning must not stop a benchmark run.
  set(IMPROTO_BUILD_TESTS OFF CACHE BOOL "" FORCE)
  set(IMPROTO_BUILD_TOOLS ON CACHE BOOL "" FORCE)
  set(IMPROTO_WERROR OFF CACHE BOOL "" FORCE)
  # EXCLUDE_FROM_ALL: only what the benchmarks use is built (the library as a
  # dependency, the servers a bench build asks for), not the clients and examples.
  add_subdirectory("${IMPROTO_BENCH_REPO}" improto EXCLUDE_FROM_ALL)
endmacro()

function(improto_bench_program name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "LINK")
  add_executable(${name} ${arg_UNPARSED_ARGUMENTS})
  target_compile_options(${name} PRIVATE -Wall -Wextra)
  target_include_directories(${name} PRIVATE "${IMPROTO_BENCH_LIB_DIR}")
  if(arg_LINK)
    target_link_libraries(${name} PRIVATE ${arg_LINK})
  endif()
endfunction()
