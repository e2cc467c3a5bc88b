// bench_alloc: the cost of one malloc+free pair, for comparing a native run with the same
// binary under libfaultline.so (idle, @memory armed with a size selector that small blocks
// never reach, @memory injecting at p=0.001). See bench/alloc.sh and docs/performance.md.
//
// Results are deliberately not checked: under a fault policy some allocations fail by design.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <new>

namespace {

void BM_malloc_free(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(size);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_malloc_free)->Arg(64)->Arg(4096);

// Under `calls = ["malloc"]` with a probability, Google Benchmark's own allocations fail
// too, and its operator new would throw std::bad_alloc and abort the run. A new-handler that
// returns makes operator new simply try again (the next draw almost surely succeeds).
void retry_allocation() {}

}  // namespace

int main(int argc, char** argv) {
  std::set_new_handler(retry_allocation);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
