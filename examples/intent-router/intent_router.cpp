// A smart-home intent router on llmos: a user command becomes an action on a simulated device.
//
// The model never writes the action. It only ranks candidates: every intent the device table
// allows (with the numbers the command mentions as arguments) is scored by the log-probability
// the model gives its text after a few-shot prompt (llmos::api::Model::score), and so is "none".
// Scores are calibrated: each candidate's score after a content-free command ("nothing") is
// subtracted, so what counts is how much this command raises the candidate, not how much the
// model likes the text anyway. The best candidate is taken only when it beats "none" by a margin
// and reaches a minimum lift; then it is validated against the table (device, action, argument
// range) before the simulated device executes it. A model that writes nonsense can therefore
// make a poor choice or refuse, never an invalid one.
//
//   intent_router MODEL.gguf [--margin NATS] [--min-gain NATS] [--per-token] [--raw] [COMMAND...]
//
// Without commands a built-in demo list runs. --per-token ranks by mean log-probability per
// token instead of the total; --raw turns calibration off.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "llmos/llmos.hpp"

namespace {

namespace api = llmos::api;

// ---- the device table ----------------------------------------------------------------------

struct Action {
  std::string name;
  std::string arg_name;  // empty: the action takes no argument
  int min = 0, max = 0;  // the argument's allowed range, inclusive
  std::string unit;
};

struct Device {
  std::string id;      // as the rest of the home system knows it
  std::string spoken;  // as commands (and candidate texts) name it
  std::vector<Action> actions;
};

const std::vector<Device>& device_table() {
  static const std::vector<Device> table = {
      {"kitchen_light",
       "kitchen light",
       {{"on", "", 0, 0, ""}, {"off", "", 0, 0, ""}, {"dim", "level", 0, 100, "%"}}},
      {"bedroom_light", "bedroom light", {{"on", "", 0, 0, ""}, {"off", "", 0, 0, ""}}},
      {"thermostat", "thermostat", {{"set", "temperature", 16, 28, " C"}}},
      {"front_door", "front door", {{"lock", "", 0, 0, ""}, {"unlock", "", 0, 0, ""}}},
      {"speaker",
       "speaker",
       {{"play", "", 0, 0, ""}, {"stop", "", 0, 0, ""}, {"volume", "volume", 0, 10, ""}}},
  };
  return table;
}

// ---- intents --------------------------------------------------------------------------------

struct Intent {
  std::string device;  // device id
  std::string action;
  std::optional<int> arg;

  std::string name() const {
    std::string out = device + "." + action;
    if (arg) out.append(" ").append(std::to_string(*arg));
    return out;
  }
};

const Device* find_device(const std::string& id) {
  for (const Device& d : device_table())
    if (d.id == id) return &d;
  return nullptr;
}

const Action* find_action(const Device& d, const std::string& name) {
  for (const Action& a : d.actions)
    if (a.name == name) return &a;
  return nullptr;
}

// Checks an intent against the table, whatever produced it. Returns why it is invalid, or
// nothing when the device may execute it.
std::optional<std::string> validate(const Intent& in) {
  const Device* d = find_device(in.device);
  if (d == nullptr) return "no device '" + in.device + "'";
  const Action* a = find_action(*d, in.action);
  if (a == nullptr) return in.device + " has no action '" + in.action + "'";
  if (a->arg_name.empty()) {
    if (in.arg) return in.device + "." + in.action + " takes no argument";
    return std::nullopt;
  }
  if (!in.arg) return in.device + "." + in.action + " needs a " + a->arg_name;
  if (*in.arg < a->min || *in.arg > a->max) {
    return a->arg_name + " " + std::to_string(*in.arg) + " is outside " + std::to_string(a->min) +
           ".." + std::to_string(a->max);
  }
  return std::nullopt;
}

// The simulated home: each device's state as text.
class Home {
 public:
  Home() {
    state_["kitchen_light"] = "off";
    state_["bedroom_light"] = "on";
    state_["thermostat"] = "20 C";
    state_["front_door"] = "unlocked";
    state_["speaker"] = "stopped, volume 4";
    volume_ = 4;
  }

  // Executes a validated intent; returns "before -> after".
  std::string execute(const Intent& in) {
    std::string& s = state_.at(in.device);
    const std::string before = s;
    if (in.action == "on" || in.action == "off") {
      s = in.action;
    } else if (in.action == "dim") {
      s = *in.arg == 0 ? "off" : "dimmed to " + std::to_string(*in.arg) + "%";
    } else if (in.action == "set") {
      s = std::to_string(*in.arg) + " C";
    } else if (in.action == "lock" || in.action == "unlock") {
      s = in.action + "ed";
    } else if (in.action == "play" || in.action == "stop") {
      s = std::string(in.action == "play" ? "playing" : "stopped") + ", volume " +
          std::to_string(volume_);
    } else if (in.action == "volume") {
      volume_ = *in.arg;
      s = s.substr(0, s.find(',')) + ", volume " + std::to_string(volume_);
    }
    return before + " -> " + s;
  }

 private:
  std::map<std::string, std::string> state_;
  int volume_ = 0;
};

// ---- scoring --------------------------------------------------------------------------------

// Examples of the format only; the model is asked to continue the last line.
std::string prompt_for(const std::string& command) {
  return "Command: switch off the bedroom light.\n"
         "Intent: bedroom light off.\n"
         "Command: please lock the front door.\n"
         "Intent: front door lock.\n"
         "Command: make the speaker volume 3.\n"
         "Intent: speaker volume 3.\n"
         "Command: tell me a joke.\n"
         "Intent: none.\n"
         "Command: " +
         command + ".\n" + "Intent:";
}

// Whole numbers in the command: the only argument values an intent may take.
std::vector<int> numbers_in(const std::string& command) {
  std::vector<int> out;
  for (size_t i = 0; i < command.size();) {
    if (std::isdigit(static_cast<unsigned char>(command[i])) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < command.size() && std::isdigit(static_cast<unsigned char>(command[j])) != 0) ++j;
    if (j - i <= 6) out.push_back(std::atoi(command.substr(i, j - i).c_str()));
    i = j;
  }
  return out;
}

struct Candidate {
  std::optional<Intent> intent;  // empty: "none"
  std::string text;              // what the model scores
  double logprob = 0.0;          // total
  double per_token = 0.0;        // mean over its tokens
};

std::vector<Candidate> candidates_for(const std::string& command) {
  std::vector<Candidate> out;
  const std::vector<int> numbers = numbers_in(command);
  for (const Device& d : device_table()) {
    for (const Action& a : d.actions) {
      if (a.arg_name.empty()) {
        out.push_back({Intent{d.id, a.name, std::nullopt}, d.spoken + " " + a.name + ".", 0, 0});
        continue;
      }
      // Out-of-range numbers stay candidates on purpose: validation, not the model, refuses them.
      for (int n : numbers) {
        out.push_back({Intent{d.id, a.name, n},
                       d.spoken + " " + a.name + " " + std::to_string(n) + ".", 0, 0});
      }
    }
  }
  out.push_back({std::nullopt, "none.", 0, 0});
  return out;
}

struct Options {
  double margin = 0.5;    // nats the best intent must beat "none" by
  double min_gain = 0.5;  // nats the best intent must reach (calibrated: the command's lift)
  bool per_token = false;
  bool calibrate = true;
};

struct Outcome {
  bool executed = false;
};

// Routes one command: scores, decides, validates, executes. Prints what happened.
// Scores of candidate texts after the content-free command; they do not depend on the command.
using Baselines = std::map<std::string, double>;

Outcome route(const api::Model& model, Home& home, const std::string& command, const Options& opt,
              Baselines& baselines) {
  std::cout << "> " << command << "\n";
  const std::vector<api::Token> context = model.tokenize(prompt_for(command), true);
  std::vector<Candidate> cands = candidates_for(command);
  const std::vector<api::Token> neutral = model.tokenize(prompt_for("nothing"), true);
  for (Candidate& c : cands) {
    const std::vector<api::Token> tokens = model.tokenize(c.text, false);
    c.logprob = model.score(context, tokens);
    c.per_token = c.logprob / static_cast<double>(tokens.size());
    if (opt.calibrate) {
      auto it = baselines.find(c.text);
      if (it == baselines.end()) it = baselines.emplace(c.text, model.score(neutral, tokens)).first;
      const double base = it->second;
      c.logprob -= base;
      c.per_token -= base / static_cast<double>(tokens.size());
    }
  }
  auto key = [&](const Candidate& c) { return opt.per_token ? c.per_token : c.logprob; };
  const Candidate* none = &cands.back();
  const Candidate* best = nullptr;
  std::vector<const Candidate*> ranked;
  for (const Candidate& c : cands) {
    if (!c.intent) continue;
    ranked.push_back(&c);
    if (best == nullptr || key(c) > key(*best)) best = &c;
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [&](const Candidate* a, const Candidate* b) { return key(*a) > key(*b); });
  std::cout << "  ranked (" << cands.size() << " candidates, "
            << (opt.per_token ? "per token" : "total") << "):";
  for (size_t i = 0; i < ranked.size() && i < 3; ++i) {
    std::cout << " \"" << ranked[i]->text << "\" " << std::fixed << std::setprecision(3)
              << key(*ranked[i]) << (i + 1 < 3 ? "," : "");
  }
  std::cout << " ... \"none.\" " << key(*none) << "\n";

  if (best == nullptr || key(*best) < key(*none) + opt.margin || key(*best) < opt.min_gain) {
    std::cout << "  REJECT no intent is clearly likely (best "
              << (best != nullptr ? best->intent->name() : std::string("-")) << " at "
              << (best != nullptr ? key(*best) : 0.0) << ", none at " << key(*none)
              << "; needs none + " << opt.margin << " and at least " << opt.min_gain << ")\n";
    return {};
  }
  const Intent& in = *best->intent;
  if (std::optional<std::string> why = validate(in)) {
    std::cout << "  REJECT " << in.name() << ": " << *why << "\n";
    return {};
  }
  std::cout << "  ACTION " << in.name() << "  [" << in.device << ": " << home.execute(in) << "]\n";
  return {true};
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::string path;
  std::vector<std::string> commands;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--margin" && i + 1 < argc) {
      opt.margin = std::atof(argv[++i]);
    } else if (a == "--min-gain" && i + 1 < argc) {
      opt.min_gain = std::atof(argv[++i]);
    } else if (a == "--per-token") {
      opt.per_token = true;
    } else if (a == "--raw") {
      opt.calibrate = false;
    } else if (path.empty()) {
      path = a;
    } else {
      commands.push_back(a);
    }
  }
  if (path.empty()) {
    std::cerr << "usage: intent_router MODEL.gguf [--margin NATS] [--min-gain NATS] [--per-token] "
                 "[--raw] [COMMAND...]\n";
    return 2;
  }
  if (commands.empty()) {
    commands = {"turn on the kitchen light", "set the thermostat to 21 degrees",
                "lock the front door",       "dim the kitchen light to 30 percent",
                "set the thermostat to 40",  "turn the bedroom light off",
                "speaker volume 7",          "what is the capital of the moon"};
  }
  try {
    api::ModelParams mp;
    mp.n_threads = 2;
    const api::Model model(path, mp);
    // The table the router enforces, as the check script reads it.
    for (const Device& d : device_table()) {
      std::cout << "DEVICE " << d.id;
      for (const Action& a : d.actions) {
        std::cout << " " << a.name;
        if (!a.arg_name.empty()) std::cout << ":" << a.min << ".." << a.max;
      }
      std::cout << "\n";
    }
    Home home;
    Baselines baselines;
    int executed = 0;
    for (const std::string& c : commands) {
      try {
        executed += route(model, home, c, opt, baselines).executed ? 1 : 0;
      } catch (const api::Error& e) {
        // A command the model cannot take (too long for its context, ...) is refused, not fatal.
        std::cout << "  REJECT cannot score the command: " << e.what() << "\n";
      }
    }
    std::cout << "RESULT commands=" << commands.size() << " actions=" << executed
              << " rejections=" << commands.size() - static_cast<size_t>(executed) << "\n";
    return 0;
  } catch (const api::Error& e) {
    std::cerr << "intent_router: " << e.what() << " (" << llmos_status_string(e.status()) << ")\n";
    return 1;
  }
}
