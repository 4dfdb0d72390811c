#include "ctm/data/arith.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <unordered_set>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/io/jsonl.hpp"

namespace ctm::data {
namespace {

struct Person {
  const char* name;
  bool female;
};

constexpr Person kPeople[] = {
    {"Tom", false},   {"Sam", false},   {"Ben", false},   {"Leo", false},   {"Max", false},  {"Jack", false},
    {"Noah", false},  {"Liam", false},  {"Omar", false},  {"Ravi", false},  {"Luis", false}, {"Ethan", false},
    {"Oscar", false}, {"Henry", false}, {"Kenji", false}, {"Diego", false}, {"Mia", true},   {"Emma", true},
    {"Lily", true},   {"Ava", true},    {"Zoe", true},    {"Nora", true},   {"Ella", true},  {"Sara", true},
    {"Anna", true},   {"Ruby", true},   {"Grace", true},  {"Maya", true},   {"Aisha", true}, {"Chloe", true},
    {"Lucia", true},  {"Hana", true},
};

struct Noun {
  const char* one;
  const char* many;
};

constexpr Noun kBox{"box", "boxes"}, kBag{"bag", "bags"}, kBasket{"basket", "baskets"}, kJar{"jar", "jars"},
    kPack{"pack", "packs"}, kBucket{"bucket", "buckets"}, kCarton{"carton", "cartons"}, kCup{"cup", "cups"};

struct Item {
  Noun noun;
  bool edible;
  Noun containers[3];
};

constexpr Item kItems[] = {
    {{"apple", "apples"}, true, {kBag, kBasket, kBox}},
    {{"orange", "oranges"}, true, {kBag, kBasket, kBox}},
    {{"cookie", "cookies"}, true, {kJar, kBox, kBag}},
    {{"cupcake", "cupcakes"}, true, {kBox, kCarton, kPack}},
    {{"muffin", "muffins"}, true, {kBox, kBasket, kBag}},
    {{"strawberry", "strawberries"}, true, {kBasket, kBox, kCup}},
    {{"banana", "bananas"}, true, {kBag, kBasket, kBox}},
    {{"candy", "candies"}, true, {kJar, kBag, kBox}},
    {{"egg", "eggs"}, true, {kCarton, kBasket, kBox}},
    {{"plum", "plums"}, true, {kBag, kBasket, kBox}},
    {{"marble", "marbles"}, false, {kBag, kJar, kBox}},
    {{"bead", "beads"}, false, {kJar, kBag, kBox}},
    {{"shell", "shells"}, false, {kBucket, kBag, kJar}},
    {{"rock", "rocks"}, false, {kBucket, kBag, kBox}},
    {{"button", "buttons"}, false, {kJar, kBox, kBag}},
    {{"sticker", "stickers"}, false, {kPack, kBox, kBag}},
    {{"card", "cards"}, false, {kPack, kBox, kBag}},
    {{"stamp", "stamps"}, false, {kPack, kBox, kBag}},
    {{"pencil", "pencils"}, false, {kBox, kPack, kCup}},
    {{"crayon", "crayons"}, false, {kBox, kPack, kCup}},
    {{"balloon", "balloons"}, false, {kBag, kPack, kBox}},
    {{"toy car", "toy cars"}, false, {kBox, kBag, kBucket}},
    {{"book", "books"}, false, {kBox, kBag, kCarton}},
    {{"flower", "flowers"}, false, {kBasket, kBucket, kCup}},
};

// What "trades each X for b Y" gives. Never a distractor's object, so a distractor cannot alias it.
constexpr Noun kTradeTargets[] = {
    {"coin", "coins"}, {"token", "tokens"}, {"ticket", "tickets"}, {"point", "points"}};

constexpr const char* kRelatives[] = {"brother", "sister", "cousin", "uncle", "aunt"};
constexpr const char* kPlaces[] = {"park", "school", "store", "library", "beach"};

int64_t draw(Rng& rng, int64_t lo, int64_t hi) {  // uniform in [lo, hi]
  return lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(hi - lo + 1)));
}

template <class T, std::size_t N>
const T& pick(Rng& rng, const T (&options)[N]) {
  return options[rng.below(N)];
}

std::string count_of(int64_t n, const Noun& noun) {
  return str(n, " ", n == 1 ? noun.one : noun.many);
}

// Who a sentence talks about. A sentence that brings in another person makes the next one use the name, so
// "He" is never ambiguous.
struct Voice {
  const Person* holder = nullptr;
  bool need_name = false;
  // At the start of a sentence: "He" / "She", or the name.
  std::string subject() { return need_name ? use_name("") : (holder->female ? "She" : "He"); }
  std::string object() { return need_name ? use_name("") : (holder->female ? "her" : "him"); }
  std::string possessive() { return need_name ? use_name("'s") : (holder->female ? "Her" : "His"); }
  std::string he() const { return holder->female ? "she" : "he"; }  // later in a sentence that named them

 private:
  std::string use_name(const char* suffix) {
    need_name = false;
    return str(holder->name, suffix);
  }
};

enum class Phase { Containers, Items };

class Generator {
 public:
  Generator(uint64_t seed, const ArithRanges& r) : rng_(seed), r_(r) {}

  ArithProblem run() {
    const int steps = static_cast<int>(draw(rng_, r_.min_steps, r_.max_steps));
    const Item& item = pick(rng_, kItems);
    item_ = item.noun;
    edible_ = item.edible;
    container_ = pick(rng_, item.containers);
    const Person& hero = next_person();
    q_.holder = s_.holder = &hero;
    const int distractor_after =
        rng_.uniform() < r_.distractor_rate ? static_cast<int>(draw(rng_, 1, steps)) : -1;
    p_.has_distractor = distractor_after > 0;

    // Start with boxes of items (then an "each box holds" step must come) or with items.
    const bool containers = rng_.uniform() < 0.3;
    if (containers) {
      phase_ = Phase::Containers;
      x_ = draw(rng_, 2, r_.max_start_containers);
      q(str(hero.name, " has ", x_, " ", container_.many, " of ", item_.many, "."));
      s(str(hero.name, " had ", x_, " ", container_.many, " of ", item_.many, "."));
    } else {
      phase_ = Phase::Items;
      x_ = draw(rng_, 2, r_.max_start);
      const bool starts = rng_.below(3) == 0;
      q(str(hero.name, starts ? " starts with " : " has ", count_of(x_, item_), "."));
      s(str(hero.name, starts ? " started with " : " had ", count_of(x_, item_), "."));
    }
    p_.max_intermediate = x_;
    for (int i = 1; i <= steps; ++i) {
      const bool last = i == steps;
      if (phase_ == Phase::Containers) {
        container_step(last);
      } else {
        item_step(last);
      }
      p_.max_intermediate = std::max(p_.max_intermediate, x_);
      if (i == distractor_after) distractor();
    }
    if (question_.empty()) {
      const int form = static_cast<int>(rng_.below(3));
      const char* tail = form == 0 ? " have now?" : form == 1 ? " have in the end?" : " have left?";
      if (form == 2 && p_.ops.back() != ArithOp::Subtract) tail = " have now?";
      question_ = str("How many ", item_.many, " does ", q_.holder->name, tail);
    }
    std::string question;
    for (const auto& sentence : q_sentences_) question += sentence + " ";
    p_.question = question + question_;
    std::string solution;
    for (const auto& sentence : s_sentences_) solution += sentence + " ";
    p_.solution = solution + str("The answer is ", x_, ".");
    p_.answer = x_;
    return p_;
  }

 private:
  void q(std::string sentence) { q_sentences_.push_back(std::move(sentence)); }
  void s(std::string sentence) { s_sentences_.push_back(std::move(sentence)); }

  const Person& next_person() {
    for (;;) {
      const Person& p = pick(rng_, kPeople);
      if (std::find(used_.begin(), used_.end(), &p) == used_.end()) {
        used_.push_back(&p);
        return p;
      }
    }
  }

  void record(ArithOp op, const char* phrasing) {
    p_.ops.push_back(op);
    p_.phrasings.emplace_back(phrasing);
  }

  // Boxes are added, removed, or turned into items ("each box holds b"); the last step always turns them.
  void container_step(bool last) {
    const int64_t x = x_;
    const int64_t max_per = std::min<int64_t>(r_.max_per_container, r_.max_value / x);
    const bool can_add = x + 1 <= r_.max_value / 2;  // keeps "each box holds 2" possible afterwards
    const double u = rng_.uniform();
    if (last || u < 0.4) {
      const int64_t b = draw(rng_, 2, max_per);
      x_ = x * b;
      const auto so = str(", so ", s_.he(), " has ", x, " * ", b, " = ", x_, " ", item_.many, ".");
      const auto& c = container_;
      switch (rng_.below(4)) {
        case 0:
          q(str("Each ", c.one, " holds ", b, " ", item_.many, "."));
          s(str("Each ", c.one, " holds ", b, " ", item_.many, so));
          record(ArithOp::Multiply, "each");
          break;
        case 1:
          q(str("There are ", b, " ", item_.many, " in every ", c.one, "."));
          s(str("There are ", b, " ", item_.many, " in every ", c.one, so));
          record(ArithOp::Multiply, "every");
          break;
        case 2:
          q(str("There are ", b, " ", item_.many, " per ", c.one, "."));
          s(str("There are ", b, " ", item_.many, " per ", c.one, so));
          record(ArithOp::Multiply, "per");
          break;
        default:
          q(str("Every ", c.one, " has ", b, " ", item_.many, " in it."));
          s(str("Every ", c.one, " has ", b, " ", item_.many, " in it", so));
          record(ArithOp::Multiply, "every");
          break;
      }
      phase_ = Phase::Items;
      return;
    }
    const bool add = x < 2 || (can_add && u < 0.7);
    const int64_t b = add ? draw(rng_, 1, std::min<int64_t>(3, r_.max_value / 2 - x)) : draw(rng_, 1, x - 1);
    x_ = add ? x + b : x - b;
    const auto so =
        str(", so ", s_.he(), " has ", x, add ? " + " : " - ", b, " = ", count_of(x_, container_), ".");
    const std::string qs = q_.subject(), ss = s_.subject();
    if (add) {
      if (rng_.below(2) == 0) {
        q(str(qs, " buys ", b, " more ", b == 1 ? container_.one : container_.many, "."));
        s(str(ss, " bought ", b, " more ", b == 1 ? container_.one : container_.many, so));
        record(ArithOp::Add, "buys");
      } else {
        q(str(qs, " finds ", b, " more ", b == 1 ? container_.one : container_.many, "."));
        s(str(ss, " found ", b, " more ", b == 1 ? container_.one : container_.many, so));
        record(ArithOp::Add, "finds");
      }
    } else {
      switch (rng_.below(3)) {
        case 0:
          q(str(qs, " gives away ", count_of(b, container_), "."));
          s(str(ss, " gave away ", count_of(b, container_), so));
          record(ArithOp::Subtract, "gives away");
          break;
        case 1:
          q(str(qs, " sells ", count_of(b, container_), "."));
          s(str(ss, " sold ", count_of(b, container_), so));
          record(ArithOp::Subtract, "sells");
          break;
        default:
          q(str(qs, " loses ", count_of(b, container_), "."));
          s(str(ss, " lost ", count_of(b, container_), so));
          record(ArithOp::Subtract, "loses");
          break;
      }
    }
  }

  // The exact divisors of x in [2, max_divisor].
  std::vector<int64_t> divisors(int64_t x) const {
    std::vector<int64_t> out;
    for (int64_t d = 2; d <= r_.max_divisor; ++d)
      if (x % d == 0) out.push_back(d);
    return out;
  }

  void item_step(bool last) {
    const int64_t x = x_;
    const bool can_add = x < r_.max_value;
    const bool can_sub = x >= 2;
    const bool can_times = !switched_ && x * 2 <= r_.max_value;
    const bool can_trade = !traded_ && x * 2 <= r_.max_value;
    const auto divs = divisors(x);
    const bool can_div = !divs.empty();
    // Weights: add, subtract, multiply, divide (division is often impossible, so it is asked for more).
    const double w[4] = {can_add ? 0.27 : 0.0, can_sub ? 0.27 : 0.0, (can_times || can_trade) ? 0.21 : 0.0,
                         can_div ? 0.25 : 0.0};
    const double total = w[0] + w[1] + w[2] + w[3];
    double u = rng_.uniform() * total;
    int op = 0;
    while (op < 3 && (u >= w[op] || w[op] == 0.0)) {
      u -= w[op];
      ++op;
    }
    switch (static_cast<ArithOp>(op)) {
      case ArithOp::Add:
        return add_step(draw(rng_, 1, std::min<int64_t>(r_.max_addend, r_.max_value - x)));
      case ArithOp::Subtract:
        return subtract_step(draw(rng_, 1, std::min<int64_t>(r_.max_addend, x - 1)));
      case ArithOp::Multiply: {
        const int64_t b = draw(rng_, 2, std::min<int64_t>(r_.max_factor, r_.max_value / x));
        const bool times = can_times && (!can_trade || rng_.below(2) == 0);
        return times ? times_step(b) : trade_step(b);
      }
      case ArithOp::Divide:
        return divide_step(divs[rng_.below(divs.size())], last);
    }
  }

  void add_step(int64_t b) {
    const int64_t x = x_;
    x_ = x + b;
    const auto tail = str(", so ", s_.he(), " has ", x, " + ", b, " = ", x_, ".");
    switch (rng_.below(5)) {
      case 0:
        q(str(q_.subject(), " buys ", b, " more ", b == 1 ? item_.one : item_.many, "."));
        s(str(s_.subject(), " bought ", b, " more", tail));
        return record(ArithOp::Add, "buys");
      case 1:
        q(str(q_.subject(), " finds ", count_of(b, item_), "."));
        s(str(s_.subject(), " found ", b, tail));
        return record(ArithOp::Add, "finds");
      case 2: {
        const Person& giver = next_person();
        q(str(q_.subject(), " receives ", count_of(b, item_), " from ", giver.name, "."));
        s(str(s_.subject(), " received ", b, " from ", giver.name, tail));
        q_.need_name = s_.need_name = true;
        return record(ArithOp::Add, "receives");
      }
      case 3: {
        const Person& giver = next_person();
        q(str(giver.name, " gives ", q_.object(), " ", count_of(b, item_), "."));
        s(str(giver.name, " gave ", s_.object(), " ", b, tail));
        q_.need_name = s_.need_name = true;
        return record(ArithOp::Add, "gives him");
      }
      default:
        q(str(q_.subject(), " gets ", b, " more ", b == 1 ? item_.one : item_.many, " as a gift."));
        s(str(s_.subject(), " got ", b, " more", tail));
        return record(ArithOp::Add, "gets as a gift");
    }
  }

  void subtract_step(int64_t b) {
    const int64_t x = x_;
    x_ = x - b;
    const auto tail = str(", so ", s_.he(), " has ", x, " - ", b, " = ", x_, ".");
    switch (rng_.below(edible_ ? 6 : 4)) {
      case 0:
        q(str(q_.subject(), " gives away ", count_of(b, item_), "."));
        s(str(s_.subject(), " gave away ", b, tail));
        return record(ArithOp::Subtract, "gives away");
      case 1:
        q(str(q_.subject(), " loses ", count_of(b, item_), "."));
        s(str(s_.subject(), " lost ", b, tail));
        return record(ArithOp::Subtract, "loses");
      case 2:
        q(str(q_.subject(), " sells ", count_of(b, item_), "."));
        s(str(s_.subject(), " sold ", b, tail));
        return record(ArithOp::Subtract, "sells");
      case 3: {
        const Person& taker = next_person();
        q(str(q_.subject(), " gives ", count_of(b, item_), " to ", taker.name, "."));
        s(str(s_.subject(), " gave ", b, " to ", taker.name, tail));
        q_.need_name = s_.need_name = true;
        return record(ArithOp::Subtract, "gives to");
      }
      default:  // cases 4 and 5: food is often eaten
        q(str(q_.subject(), " eats ", count_of(b, item_), "."));
        s(str(s_.subject(), " ate ", b, tail));
        return record(ArithOp::Subtract, "eats");
    }
  }

  // Someone else has b times as many; the story follows them from here on.
  void times_step(int64_t b) {
    const int64_t x = x_;
    x_ = x * b;
    const Person& other = next_person();
    q(str(other.name, " has ", b, " times as many ", item_.many, " as ", q_.holder->name, "."));
    s(str(other.name, " has ", b, " times as many, so ", other.name, " has ", x, " * ", b, " = ", x_, "."));
    q_.holder = s_.holder = &other;
    q_.need_name = s_.need_name = true;
    switched_ = true;
    record(ArithOp::Multiply, "times");
  }

  void trade_step(int64_t b) {
    const int64_t x = x_;
    x_ = x * b;
    const Noun target = pick(rng_, kTradeTargets);
    const auto tail = str(", so ", s_.he(), " has ", x, " * ", b, " = ", x_, " ", target.many, ".");
    if (rng_.below(2) == 0) {
      q(str(q_.subject(), " trades each ", item_.one, " for ", b, " ", target.many, "."));
      s(str(s_.subject(), " traded each ", item_.one, " for ", b, " ", target.many, tail));
      record(ArithOp::Multiply, "each");
    } else {
      q(str(q_.subject(), " gets ", b, " ", target.many, " for every ", item_.one, "."));
      s(str(s_.subject(), " got ", b, " ", target.many, " for every ", item_.one, tail));
      record(ArithOp::Multiply, "every");
    }
    item_ = target;
    edible_ = false;
    traded_ = true;
  }

  void divide_step(int64_t b, bool last) {
    const int64_t x = x_;
    x_ = x / b;
    const auto div = str(x, " / ", b, " = ", x_, ".");
    const int form = static_cast<int>(rng_.below(3));
    if (form == 0 || (form == 1 && switched_)) {
      q(str(q_.subject(), " splits the ", item_.many, " into ", b, " equal piles and keeps one pile."));
      s(str(s_.subject(), " split them into ", b, " equal piles and kept one, so ", s_.he(), " has ", div));
      return record(ArithOp::Divide, "splits into");
    }
    if (last) {
      q(str(q_.subject(), " shares the ", item_.many, " equally among ", b, " friends."));
      s(str(s_.subject(), " shared them equally among ", b, " friends, so each friend gets ", div));
      question_ = str("How many ", item_.many, " does each friend get?");
      return record(ArithOp::Divide, "shares equally");
    }
    if (switched_) {  // one change of holder per story is enough
      q(str(q_.subject(), " splits the ", item_.many, " into ", b, " equal groups and keeps one group."));
      s(str(s_.subject(), " split them into ", b, " equal groups and kept one, so ", s_.he(), " has ", div));
      return record(ArithOp::Divide, "splits into");
    }
    const Person& friend_ = next_person();
    q(str(q_.subject(), " shares the ", item_.many, " equally among ", b, " friends, and ", friend_.name,
          " is one of them."));
    s(str(s_.subject(), " shared them equally among ", b, " friends, so ", friend_.name, " gets ", div));
    q_.holder = s_.holder = &friend_;
    q_.need_name = s_.need_name = true;
    switched_ = true;
    record(ArithOp::Divide, "shares equally");
  }

  // One sentence with a number that does not matter (the question only; the solution ignores it).
  void distractor() {
    const int64_t c = draw(rng_, 1, r_.max_addend);
    switch (rng_.below(4)) {
      case 0: {
        const Person& other = next_person();
        q(str(other.name, " has ", count_of(c, other_item()), "."));
        q_.need_name = true;
        break;
      }
      case 1:
        q(str(q_.possessive(), " ", pick(rng_, kRelatives), " is ", draw(rng_, 5, 12), " years old."));
        q_.need_name = true;
        break;
      case 2:
        q(str(q_.subject(), " also has ", count_of(c, other_item()), "."));
        break;
      default:
        q(str("It takes ", q_.object(), " ", c, " minutes to walk to the ", pick(rng_, kPlaces), "."));
        break;
    }
  }

  // An object other than the one counted (and never a trade target, which the count may become later).
  Noun other_item() {
    for (;;) {
      const Noun& n = pick(rng_, kItems).noun;
      if (std::string(n.many) != item_.many) return n;
    }
  }

  Rng rng_;
  const ArithRanges& r_;
  ArithProblem p_;
  Voice q_, s_;
  std::vector<std::string> q_sentences_, s_sentences_;
  std::string question_;
  std::vector<const Person*> used_;
  Phase phase_ = Phase::Items;
  Noun item_{}, container_{};
  bool edible_ = false, switched_ = false, traded_ = false;
  int64_t x_ = 0;
};

}  // namespace

std::string ArithProblem::openai_answer() const {
  return str(solution, "\n#### ", answer);
}

ArithProblem generate_arith_problem(uint64_t seed, uint64_t index, const ArithRanges& ranges) {
  CTM_CHECK(ranges.min_steps >= 1 && ranges.min_steps <= ranges.max_steps, "ARITH: bad step range");
  CTM_CHECK(ranges.max_start >= 2 && ranges.max_start_containers >= 2 && ranges.max_addend >= 1 &&
                ranges.max_factor >= 2 && ranges.max_per_container >= 2 && ranges.max_divisor >= 2 &&
                ranges.max_value >= 4 * ranges.max_start_containers && ranges.max_value >= ranges.max_start,
            "ARITH: number ranges too small");
  return Generator(mix_seed(seed, index, 0), ranges).run();
}

ArithSplits generate_arith_splits(int64_t train_size, int64_t test_size, uint64_t seed,
                                  const ArithRanges& ranges) {
  CTM_CHECK(train_size >= 0 && test_size >= 0, "ARITH: split sizes must be >= 0");
  ArithSplits out;
  std::unordered_set<std::string> test_questions, train_questions;
  // Give up on a split that cannot be filled with distinct questions (ranges far too small for its size).
  auto fill = [&](std::vector<ArithProblem>& split, int64_t size, uint64_t base,
                  std::unordered_set<std::string>& taken, const std::unordered_set<std::string>* other) {
    const uint64_t limit = static_cast<uint64_t>(size) * 20 + 1000;
    for (uint64_t i = 0; static_cast<int64_t>(split.size()) < size; ++i) {
      CTM_CHECK(i < limit, "ARITH: cannot find ", size, " distinct questions (ranges too small)");
      ArithProblem p = generate_arith_problem(seed, base + i, ranges);
      if ((other && other->count(p.question)) || !taken.insert(p.question).second) {
        ++out.skipped_duplicates;
        continue;
      }
      split.push_back(std::move(p));
    }
  };
  fill(out.test, test_size, 0, test_questions, nullptr);
  fill(out.train, train_size, kArithTrainIndexBase, train_questions, &test_questions);
  return out;
}

ArithStats arith_stats(const std::vector<ArithProblem>& problems) {
  ArithStats st;
  st.problems = static_cast<int64_t>(problems.size());
  double sum = 0;
  if (!problems.empty()) st.answer_min = st.answer_max = problems.front().answer;
  for (const auto& p : problems) {
    st.with_distractor += p.has_distractor;
    ++st.steps[static_cast<int>(p.ops.size())];
    for (auto op : p.ops) ++st.ops[static_cast<int>(op)];
    for (const auto& ph : p.phrasings) ++st.phrasings[ph];
    st.answer_min = std::min(st.answer_min, p.answer);
    st.answer_max = std::max(st.answer_max, p.answer);
    st.intermediate_max = std::max(st.intermediate_max, p.max_intermediate);
    ++st.answer_buckets[p.answer / 10 * 10];
    sum += static_cast<double>(p.answer);
  }
  st.answer_mean = problems.empty() ? 0.0 : sum / static_cast<double>(problems.size());
  return st;
}

std::string format_arith_stats(const std::string& split_name, const ArithStats& st) {
  std::ostringstream os;
  const auto pct = [&](int64_t n) {
    std::ostringstream p;
    p << std::fixed << std::setprecision(1) << (st.problems ? 100.0 * n / st.problems : 0.0) << "%";
    return p.str();
  };
  os << split_name << ": " << st.problems << " problems, " << st.with_distractor << " with a distractor ("
     << pct(st.with_distractor) << ")\n";
  os << "  steps:";
  for (const auto& [k, n] : st.steps) os << "  " << k << ": " << n << " (" << pct(n) << ")";
  os << "\n  operations:";
  for (std::size_t i = 0; i < st.ops.size(); ++i) os << "  " << kArithOpNames[i] << ": " << st.ops[i];
  os << "\n  wordings:";
  for (const auto& [k, n] : st.phrasings) os << "  " << k << ": " << n;
  os << "\n  answers: min " << st.answer_min << ", max " << st.answer_max << ", mean " << std::fixed
     << std::setprecision(2) << st.answer_mean << "; largest intermediate " << st.intermediate_max << "\n";
  os << "  answer ranges:";
  for (const auto& [k, n] : st.answer_buckets) os << "  " << k << "-" << k + 9 << ": " << n;
  os << "\n";
  return os.str();
}

void write_arith_jsonl(const std::string& path, const std::vector<ArithProblem>& problems) {
  JsonlWriter out(path);
  for (const auto& p : problems) {
    Json rec;
    rec["question"] = p.question;
    rec["answer"] = p.openai_answer();
    out.write(rec);
  }
  out.commit();
}

}  // namespace ctm::data
