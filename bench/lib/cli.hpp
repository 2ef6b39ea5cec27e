#pragma once

// The command line of the bench programs: `--name value` pairs and a fatal
// error that names the program.
//
//   bench::program = "udp_load";
//   for (bench::args a(argc, argv); a.next();) {
//     if (a.is("--port")) port = a.integer();
//     else a.unknown();
//   }

#include <cstdio>
#include <cstdlib>
#include <string>

namespace bench {

inline const char* program = "bench";

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program, what.c_str());
  std::exit(1);
}

class args {
 public:
  args(int argc, char** argv) : argc_(argc), argv_(argv) {}

  // Steps to the next option name; false after the last.
  bool next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    return true;
  }
  const std::string& name() const { return name_; }
  bool is(const char* option) const { return name_ == option; }

  // The option's value (the next argument).
  std::string value() {
    if (i_ + 1 >= argc_) die(name_ + " needs a value");
    return argv_[++i_];
  }
  long long integer() { return std::atoll(value().c_str()); }
  double number() { return std::atof(value().c_str()); }

  [[noreturn]] void unknown() const {
    die("unknown argument " + name_ + " (see the comment at the top of " + program + ".cpp)");
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string name_;
};

}  // namespace bench
