#pragma once

// Everything of the relay codec (protocols 3 and 4): messages, serializers,
// describe(), the stream decoder and the ERROR codes.

#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"
