// LatencyHistogram: a fixed-size, log-linear histogram of non-negative 64-bit values (latencies in
// nanoseconds), in the spirit of HdrHistogram.
//
// Values below 2^kSubBits are counted exactly. Above that, every power-of-two range [2^e, 2^(e+1))
// is split into 2^kSubBits equal sub-buckets, so a reported percentile is within 1/2^kSubBits
// (1.6 %) of the true value. The whole 64-bit range fits in kBuckets counters (about 30 KiB), and
// Record() is a few instructions with no allocation, so a load generator can record every sample.
//
// Thread-safety: none; give each thread its own histogram and Merge() them afterwards.
#ifndef NETPOLL_BENCH_LATENCY_HISTOGRAM_H_
#define NETPOLL_BENCH_LATENCY_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace netpoll_bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;
  // Exact buckets [0, kSubBuckets) plus kSubBuckets per exponent kSubBits..63.
  static constexpr int kBuckets = static_cast<int>(kSubBuckets * (64 - kSubBits + 1));

  void Record(uint64_t value) {
    ++counts_[BucketOf(value)];
    ++count_;
    sum_ += value;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  void Merge(const LatencyHistogram& other) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // The value at quantile q in [0, 1]: the midpoint of the bucket holding the ceil(q * count)-th
  // smallest sample, clamped to [min, max] so that exact extremes are reported exactly. 0 if empty.
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999999);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        return std::clamp(BucketMidpoint(i), min(), max_);
      }
    }
    return max_;
  }

  static int BucketOf(uint64_t value) {
    if (value < kSubBuckets) return static_cast<int>(value);
    const int exponent = 63 - std::countl_zero(value);  // >= kSubBits
    const int shift = exponent - kSubBits;
    const uint64_t sub = (value >> shift) & (kSubBuckets - 1);
    return static_cast<int>(static_cast<uint64_t>(shift + 1) * kSubBuckets + sub);
  }

  // Smallest value that falls in bucket `index`.
  static uint64_t BucketLow(int index) {
    const uint64_t i = static_cast<uint64_t>(index);
    if (i < kSubBuckets) return i;
    const int shift = static_cast<int>(i / kSubBuckets) - 1;
    const uint64_t sub = i % kSubBuckets;
    return (kSubBuckets + sub) << shift;
  }

  static uint64_t BucketMidpoint(int index) {
    const uint64_t low = BucketLow(index);
    if (static_cast<uint64_t>(index) < kSubBuckets) return low;
    const int shift = index / static_cast<int>(kSubBuckets) - 1;
    return low + ((uint64_t{1} << shift) >> 1);
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace netpoll_bench

#endif  // NETPOLL_BENCH_LATENCY_HISTOGRAM_H_
