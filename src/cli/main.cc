#include <cstdio>
int main() { std::puts("llmos"); return 0; }
