// For the tests that steer a session through faultline_control directly (far faster than
// spawning the CLI): attach to a session the program under test is still creating.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"
#include "session/session.h"

namespace fltest {

// Retries for up to 5 s; a test failure (and nullptr) if the session never appears.
inline std::unique_ptr<faultline::ControlSession> attach_when_ready(const std::string& name) {
  std::string error;
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (auto s = faultline::ControlSession::attach(name, error)) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "session " << name << " never appeared: " << error;
  return nullptr;
}

}  // namespace fltest
