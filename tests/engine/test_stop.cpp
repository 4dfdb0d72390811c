// SIGTERM while sampling: the engine finishes the requests it started (their samples are delivered through
// on_done, complete), opens no new one, and says it stopped.
#include <gtest/gtest.h>

#include <algorithm>

#include "ctm/core/signal.hpp"
#include "ctm/engine/engine.hpp"
#include "engine_test_util.hpp"

using namespace ctm;
using namespace ctm::engine;
using ctm::engine::test::tiny;

TEST(EngineStop, FinishesStartedRequestsAndOpensNoNewOne) {
  EngineOptions o;
  o.max_batch = 4;  // two requests of 2 samples at a time
  o.progress = false;
  std::vector<Request> requests(6);
  for (int64_t i = 0; i < 6; ++i) {
    requests[i].id = i;
    requests[i].prompt_ids =
        tiny().tokenizer.encode("Question: Tom has " + std::to_string(i) + " apples.", false);
    requests[i].params.n = 2;
    requests[i].params.temperature = 1.0;
    requests[i].params.max_new_tokens = 24;
    requests[i].params.ignore_eos = true;
  }
  Engine reference(*tiny().model, tiny().tokenizer, o);
  const std::vector<RequestOutput> full = reference.generate(requests);

  Engine eng(*tiny().model, tiny().tokenizer, o);
  std::vector<int64_t> delivered;
  const std::vector<RequestOutput> out = eng.generate(requests, [&](const RequestOutput& r) {
    delivered.push_back(r.index);
    request_stop();  // the first finished request brings the stop (as a SIGTERM would)
  });
  clear_stop_request();
  EXPECT_TRUE(eng.stats().stopped);
  ASSERT_GE(delivered.size(), 1u);
  EXPECT_LT(delivered.size(), requests.size());
  for (int64_t i : delivered) {  // every delivered request is complete and the same as without the stop
    ASSERT_EQ(out[i].completions.size(), 2u);
    for (int s = 0; s < 2; ++s) EXPECT_EQ(out[i].completions[s].token_ids, full[i].completions[s].token_ids);
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (std::find(delivered.begin(), delivered.end(), static_cast<int64_t>(i)) == delivered.end()) {
      EXPECT_TRUE(out[i].completions.empty()) << "request " << i << " was not started, yet has completions";
    }
  }
  EXPECT_FALSE(reference.stats().stopped);
}
