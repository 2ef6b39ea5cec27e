"""Builds improto._core with the project's CMake build (two folders up) and
installs it with the pure-Python package. Offline: needs only Debian's
cmake, a C++20 compiler, pybind11-dev, python3-dev and the library's own
build dependencies.

Environment:
  IMPROTO_PYTHON_BUILD_DIR   CMake build folder to use (and keep), e.g. for
                             incremental rebuilds; default: setuptools' temp folder
  IMPROTO_PYTHON_BUILD_TYPE  CMAKE_BUILD_TYPE, default Release
  CMAKE_CXX_COMPILER_LAUNCHER  e.g. ccache (read by CMake itself)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        if not (ROOT / "libimproto" / "CMakeLists.txt").exists():
            raise RuntimeError(f"libimproto sources not found in {ROOT}: install from the repository")
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        build_dir = Path(os.environ.get("IMPROTO_PYTHON_BUILD_DIR")
                         or Path(self.build_temp) / "cmake").resolve()
        args = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=" + os.environ.get("IMPROTO_PYTHON_BUILD_TYPE", "Release"),
            # Only the library and the module: no tests, tools or fuzzers.
            "-DIMPROTO_BUILD_TESTS=OFF", "-DIMPROTO_BUILD_TOOLS=OFF", "-DIMPROTO_BUILD_FUZZERS=OFF",
            "-DIMPROTO_BUILD_PYTHON=ON", "-DIMPROTO_PYTHON_REQUIRED=ON",
            # A user's compiler may warn where ours does not; the project's
            # own build keeps -Werror.
            "-DIMPROTO_WERROR=OFF",
            "-DIMPROTO_PYTHON_OUTPUT_DIR=" + str(target.parent),
            "-DPython3_EXECUTABLE=" + sys.executable,
        ]
        if not (build_dir / "CMakeCache.txt").exists() and shutil.which("ninja"):
            args += ["-G", "Ninja"]
        subprocess.check_call(args)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "improto_python",
                               "-j", str(os.cpu_count() or 2)])
        if not target.exists():
            raise RuntimeError(f"the CMake build did not produce {target}")


setup(
    ext_modules=[CMakeExtension("improto._core")],
    cmdclass={"build_ext": CMakeBuild},
)
