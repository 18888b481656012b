// Greedy continuation through an installed llmos's C++ API: consumer_cpp MODEL.gguf [PROMPT]
#include <iostream>
#include <string>

#include <llmos/llmos.hpp>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: consumer_cpp MODEL.gguf [PROMPT]\n";
    return 2;
  }
  try {
    llmos::api::Model model(argv[1]);
    llmos::api::Engine engine(model);
    const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
    std::cout << prompt << engine.generate(prompt, llmos::api::SamplingParams::greedy(24)) << "\n";
    return 0;
  } catch (const llmos::api::Error& e) {
    std::cerr << "consumer_cpp: " << e.what() << "\n";
    return 1;
  }
}
