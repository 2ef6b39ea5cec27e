#pragma once

// CPU time of other processes, for the load generators that measure a
// server's CPU per request (bench/http/httprate.cpp, bench/udp/udp_load.cpp,
// bench/relay/relayload.cpp), and of the generator itself.
//
// cpu_seconds(pids): user+system time of those processes, all their threads,
// in seconds. It sums the first field of /proc/PID/task/*/schedstat (the
// scheduler's nanosecond run time, the same quantity /proc/PID/stat's
// utime+stime report in 10 ms ticks); where schedstat is unavailable it falls
// back to utime+stime. Threads that exited are not counted by the schedstat
// sum: our servers' threads live as long as the server.

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

inline double stat_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  long long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::atoll(field.c_str());
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

inline double schedstat_seconds(int pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  long long ns = 0;
  bool any = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/schedstat");
    long long run = 0;
    if (f >> run) {
      ns += run;
      any = any || run > 0;
    }
  }
  closedir(d);
  return any ? static_cast<double>(ns) / 1e9 : -1;
}

// Seconds of CPU used by `pids` so far; negative when a process is gone.
inline double cpu_seconds(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) {
    double s = schedstat_seconds(pid);
    if (s < 0) s = stat_seconds(pid);
    if (s < 0) return -1;
    total += s;
  }
  return total;
}

// Seconds of CPU this process has used (user+system, all threads).
inline double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace bench
