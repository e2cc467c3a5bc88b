// A private session for one unit test: compiled from an inline policy, attached as the
// engine's block, removed at the end.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "policy/policy.h"
#include "session/session.h"
#include "shim/engine/engine.h"

namespace faultline::testing {

inline std::string unique_session_name(const char* tag) {
  static int counter = 0;
  return std::string("fl-test-") + tag + "-" + std::to_string(getpid()) + "-" +
         std::to_string(counter++);
}

class TestSession {
 public:
  TestSession(const std::string& toml, const char* tag = "unit") {
    CompileResult result = compile_policy_string(toml, "test.toml");
    if (result.error) ADD_FAILURE() << result.error->to_string();
    policy_ = result.policy.value_or(Policy{});
    name_ = unique_session_name(tag);
    std::string error;
    session_ = ControlSession::create(name_, policy_, error);
    if (!session_) ADD_FAILURE() << error;
    shim::g_block.store(&session_->block());
    // Every new block starts at generation 1: make the engine rebuild its rules from this one
    // instead of reusing a previous test's copy of the same generation.
    shim::engine_reset_process_identity();
  }
  ~TestSession() {
    shim::g_block.store(nullptr);
    ControlSession::remove(name_);
  }
  ControlSession& session() { return *session_; }
  FaultSlot& slot(const char* fault) {
    return session_->block().faults[session_->find_fault(fault)];
  }

 private:
  Policy policy_;
  std::string name_;
  std::unique_ptr<ControlSession> session_;
};

}  // namespace faultline::testing
