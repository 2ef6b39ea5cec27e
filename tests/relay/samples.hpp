#pragma once

// One message of every type with its exact bytes, shared by the relay tests.

#include <string>
#include <vector>

#include "improto/relay/messages.hpp"

namespace improto::test {

struct relay_sample {
  relay::message msg;
  std::string bytes;
};

inline const std::string hello_sha =
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

inline std::vector<relay_sample> relay_samples() {
  using namespace improto::relay;
  return {
      {register_request{role::to_send, "alice"}, "REGISTER TOSEND alice\n\n"},
      {register_request{role::to_recv, "alice"}, "REGISTER TORECV alice\n\n"},
      {registered{role::to_send, "alice"}, "REGISTERED TOSEND alice\n\n"},
      {registered{role::to_recv, "alice"}, "REGISTERED TORECV alice\n\n"},
      {relay::send{"bob", "hello"}, "SEND bob\nContent-length: 5\n\nhello"},
      {relay::send{"ALL", ""}, "SEND ALL\nContent-length: 0\n\n"},
      {sent{"bob"}, "SENT bob\n\n"},
      {forward{"alice", "hello"}, "FORWARD alice\nContent-length: 5\n\nhello"},
      {forward{"alice", std::string("a\0\n\nb", 5)},
       std::string("FORWARD alice\nContent-length: 5\n\na\0\n\nb", 38)},
      {received{"alice"}, "RECEIVED alice\n\n"},
      {error_reply{102, "Unable to send"}, "ERROR 102 Unable to send\n\n"},
      {error_reply{103, "Header Incomplete"}, "ERROR 103 Header Incomplete\n\n"},
      {error_reply{105, ""}, "ERROR 105\n\n"},
      {list_users{}, "LIST USERS\n\n"},
      {list_users{"bob"}, "LIST USERS\nAfter: bob\n\n"},
      {user_list{{"alice", "bob"}, false}, "USERS\nContent-length: 10\n\nalice\nbob\n"},
      {user_list{{"alice"}, true}, "USERS\nMore: yes\nContent-length: 6\n\nalice\n"},
      {user_list{}, "USERS\nContent-length: 0\n\n"},
      {list_files{}, "LIST FILES\n\n"},
      {list_files{"my song.mp3"}, "LIST FILES\nAfter: my song.mp3\n\n"},
      {file_list{{{"hello.txt", 5}, {"my song.mp3", 1048576}}, false},
       "FILES\nContent-length: 32\n\n5 hello.txt\n1048576 my song.mp3\n"},
      {file_list{{{"a", 0}}, true}, "FILES\nMore: yes\nContent-length: 4\n\n0 a\n"},
      {subscribe{}, "SUBSCRIBE PRESENCE\n\n"},
      {subscribed{}, "SUBSCRIBED PRESENCE\n\n"},
      {unsubscribe{}, "UNSUBSCRIBE PRESENCE\n\n"},
      {unsubscribed{}, "UNSUBSCRIBED PRESENCE\n\n"},
      {joined{"carol"}, "JOINED carol\n\n"},
      {left{"carol"}, "LEFT carol\n\n"},
      {download{"my song.mp3", 40000, 0}, "DOWNLOAD my song.mp3\nUdp-port: 40000\nOffset: 0\n\n"},
      {download{"x", 1, 524288}, "DOWNLOAD x\nUdp-port: 1\nOffset: 524288\n\n"},
      {transfer{7, 5, 0, hello_sha, 50001},
       "TRANSFER 7\nSize: 5\nOffset: 0\nSha256: " + hello_sha + "\nUdp-port: 50001\n\n"},
      {relay::pause{7}, "PAUSE 7\n\n"},
      {resume{7}, "RESUME 7\n\n"},
      {cancel{4294967295u}, "CANCEL 4294967295\n\n"},
      {paused{7}, "PAUSED 7\n\n"},
      {resumed{7}, "RESUMED 7\n\n"},
      {cancelled{7}, "CANCELLED 7\n\n"},
  };
}

}  // namespace improto::test
