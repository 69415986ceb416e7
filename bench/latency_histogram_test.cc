#include "bench/latency_histogram.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace netpoll_bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < LatencyHistogram::kSubBuckets; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.0), 0u);
  EXPECT_EQ(h.Percentile(0.5), LatencyHistogram::kSubBuckets / 2 - 1);
  EXPECT_EQ(h.Percentile(1.0), LatencyHistogram::kSubBuckets - 1);
}

TEST(LatencyHistogramTest, BucketsTileTheRangeInOrder) {
  uint64_t previous_low = 0;
  for (int i = 1; i < LatencyHistogram::kBuckets; ++i) {
    const uint64_t low = LatencyHistogram::BucketLow(i);
    ASSERT_GT(low, previous_low) << "bucket " << i;
    ASSERT_EQ(LatencyHistogram::BucketOf(low), i);
    ASSERT_EQ(LatencyHistogram::BucketOf(low - 1), i - 1);
    previous_low = low;
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(std::numeric_limits<uint64_t>::max()),
            LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogramTest, PercentilesWithinRelativePrecision) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 1000000; ++v) h.Record(v);
  const double tolerance = 1.0 / LatencyHistogram::kSubBuckets;
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double expected = q * 1000000;
    EXPECT_NEAR(static_cast<double>(h.Percentile(q)), expected, expected * tolerance) << q;
  }
  EXPECT_EQ(h.Percentile(1.0), 1000000u);  // clamped to the exact maximum
  EXPECT_EQ(h.min(), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 500000.5);
}

TEST(LatencyHistogramTest, TailIsNotHiddenByTheBulk) {
  LatencyHistogram h;
  for (int i = 0; i < 998; ++i) h.Record(10000);      // 10 us
  for (int i = 0; i < 2; ++i) h.Record(400000000);    // 0.4 s
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.99)), 10000, 10000 / 64.0);
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.999)), 400000000, 400000000 / 64.0);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.Record(100);
  b.Record(1000000);
  b.Record(5);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.min(), 5u);
  EXPECT_EQ(a.max(), 1000000u);
  EXPECT_EQ(a.Percentile(0.5), 100u);
}

}  // namespace
}  // namespace netpoll_bench
