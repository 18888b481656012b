#include "sched/request.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace llmos {
namespace {

RequestParams valid() {
  RequestParams p;
  p.prompt = {1, 2, 3};
  p.max_tokens = 4;
  return p;
}

// The message of the Error that validate() throws ("" when it does not throw).
std::string error_of(const RequestParams& p, int32_t max_model_len = 16, int32_t vocab = 100) {
  try {
    p.validate(max_model_len, vocab);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    return e.message();
  }
  return "";
}

TEST(Request, ValidParamsPass) { EXPECT_EQ(error_of(valid()), ""); }

TEST(Request, ValidationNamesTheProblem) {
  RequestParams p = valid();
  p.prompt.clear();
  EXPECT_NE(error_of(p).find("empty"), std::string::npos);

  p = valid();
  p.max_tokens = 0;
  EXPECT_NE(error_of(p).find("max_tokens"), std::string::npos);
  p.max_tokens = -3;
  EXPECT_NE(error_of(p).find("max_tokens"), std::string::npos);

  p = valid();
  p.prompt.assign(16, 1);  // fills the whole context: nothing left to generate into
  EXPECT_NE(error_of(p, 16).find("no room"), std::string::npos);
  p.prompt.assign(15, 1);
  EXPECT_EQ(error_of(p, 16), "");

  p = valid();
  p.priority = static_cast<Priority>(7);
  EXPECT_NE(error_of(p).find("priority"), std::string::npos);

  p = valid();
  p.prompt[1] = 100;
  EXPECT_NE(error_of(p, 16, 100).find("prompt[1]"), std::string::npos);
  p.prompt[1] = -1;
  EXPECT_NE(error_of(p, 16, 0).find("prompt[1]"), std::string::npos);

  p = valid();
  p.stop_strings = {"ok", ""};
  EXPECT_NE(error_of(p).find("stop_strings[1]"), std::string::npos);

  p = valid();
  p.sampling.top_p = 0.0f;
  EXPECT_NE(error_of(p), "");
}

TEST(Request, PriorityNamesRoundTrip) {
  for (Priority p : {Priority::kRealtime, Priority::kInteractive, Priority::kBackground}) {
    EXPECT_EQ(parse_priority(priority_name(p)), p);
  }
  EXPECT_THROW(parse_priority("urgent"), Error);
  EXPECT_THROW(parse_priority(""), Error);
}

TEST(Request, TracksPromptAndGeneratedTokens) {
  Request r(5, 2, valid());
  EXPECT_EQ(r.num_tokens(), 3);
  EXPECT_EQ(r.num_prompt_tokens, 3);
  EXPECT_EQ(r.num_generated(), 0);
  r.tokens.push_back(9);
  EXPECT_EQ(r.num_generated(), 1);
  ASSERT_EQ(r.generated().size(), 1u);
  EXPECT_EQ(r.generated()[0], 9);
  EXPECT_TRUE(r.is_queued());
  EXPECT_STREQ(request_state_name(r.state), "waiting");
  EXPECT_STREQ(request_finish_reason_name(RequestFinishReason::kEos), "eos");
}

}  // namespace
}  // namespace llmos
