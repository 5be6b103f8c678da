// The rasterizer kernel; conventions in raster.hpp.
#include "raster.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace pnccrender {
namespace {

using i64 = std::int64_t;

constexpr i64 kSub = i64{1} << kSubpixelBits;  // subpixel units per pixel
constexpr i64 kHalf = kSub / 2;                 // pixel centre offset, in subpixel units
constexpr std::int32_t kInvalid = std::numeric_limits<std::int32_t>::min();

static_assert((i64{-1} >> 1) == -1, "arithmetic right shift is needed for floor division");

// floor(v / kSub) and ceil(v / kSub).
inline i64 floor_sub(i64 v) { return v >> kSubpixelBits; }
inline i64 ceil_sub(i64 v) { return -((-v) >> kSubpixelBits); }

// First and last pixel index whose centre (index * kSub + kHalf) lies in [lo, hi].
inline i64 first_centre(i64 lo) { return ceil_sub(lo - kHalf); }
inline i64 last_centre(i64 hi) { return floor_sub(hi - kHalf); }

// True if the edge a -> b of a triangle with positive area (see raster.hpp) is a top or left
// edge. Reversing an edge flips the answer, which makes shared edges owned exactly once.
inline bool is_top_left(i64 dx, i64 dy) { return dy < 0 || (dy == 0 && dx > 0); }

// Side of the pixel tile of the small-triangle path (kTile * kTile bits must fit a uint32).
constexpr int kTile = 4;

// Index of the lowest set bit of a non-zero mask.
inline int lowest_bit(std::uint32_t mask) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctz(mask);
#else
  int bit = 0;
  while ((mask & 1u) == 0) {
    mask >>= 1;
    ++bit;
  }
  return bit;
#endif
}

// Per-thread scratch: the snapped x, y of the current mesh (kInvalid for skipped vertices).
struct Scratch {
  std::vector<std::int32_t> sx;
  std::vector<std::int32_t> sy;
};

void snap_vertices(const float* verts, i64 n, Scratch& s) {
  for (i64 v = 0; v < n; ++v) {
    const double x = verts[3 * v];
    const double y = verts[3 * v + 1];
    const float z = verts[3 * v + 2];
    if (std::isfinite(x) && std::isfinite(y) && std::isfinite(z) &&
        std::fabs(x) <= kMaxCoordinate && std::fabs(y) <= kMaxCoordinate) {
      // nearbyint rounds half to even in the default rounding mode; exact for these ranges.
      s.sx[v] = static_cast<std::int32_t>(std::nearbyint(x * kSub));
      s.sy[v] = static_cast<std::int32_t>(std::nearbyint(y * kSub));
    } else {
      s.sx[v] = kInvalid;
      s.sy[v] = kInvalid;
    }
  }
}

// Outputs of one mesh (pointers to its first pixel; bary may be null).
struct MeshOut {
  float* image;
  float* depth;
  std::int32_t* tri_id;
  float* bary;
};

// Draws every triangle into rows [row0, row1) of one mesh, z-buffered: a pixel that passes the
// depth test gets the triangle's depth, id, attributes and barycentrics. kChannels > 0 is the
// attribute width known at compile time (unrolled), 0 means job.channels.
template <int kChannels>
void rasterize_band(const RenderJob& job, const float* verts, const float* attrs,
                    const Scratch& s, int row0, int row1, const MeshOut& out) {
  const i64 n = job.n_vertices;
  const i64 width = job.width;
  const i64 nc = kChannels > 0 ? kChannels : job.channels;
  for (i64 t = 0; t < job.n_triangles; ++t) {
    const std::int32_t* tri = job.triangles + 3 * t;
    // Negative indices become huge unsigned values and fail the same test.
    std::uint32_t u0 = static_cast<std::uint32_t>(tri[0]);
    std::uint32_t u1 = static_cast<std::uint32_t>(tri[1]);
    std::uint32_t u2 = static_cast<std::uint32_t>(tri[2]);
    if (u0 >= n || u1 >= n || u2 >= n) continue;
    i64 y0 = s.sy[u0], y1 = s.sy[u1], y2 = s.sy[u2];
    if (y0 == kInvalid || y1 == kInvalid || y2 == kInvalid) continue;

    const i64 y_min = std::min({y0, y1, y2});
    const i64 y_max = std::max({y0, y1, y2});
    const i64 r_lo = std::max<i64>(first_centre(y_min), row0);
    const i64 r_hi = std::min<i64>(last_centre(y_max), i64{row1} - 1);
    if (r_lo > r_hi) continue;

    i64 x0 = s.sx[u0], x1 = s.sx[u1], x2 = s.sx[u2];
    const i64 x_min = std::min({x0, x1, x2});
    const i64 x_max = std::max({x0, x1, x2});
    const i64 c_lo = std::max<i64>(first_centre(x_min), 0);
    const i64 c_hi = std::min<i64>(last_centre(x_max), width - 1);
    if (c_lo > c_hi) continue;
    const i64 x_extent = x_max - x_min;
    const i64 y_extent = y_max - y_min;

    i64 area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0);
    if (area == 0) continue;
    // Internally every triangle is made clockwise on screen (area > 0) by swapping v1, v2;
    // `swapped` restores the caller's vertex order for the barycentrics.
    const bool swapped = area < 0;
    if (swapped) {
      std::swap(x1, x2);
      std::swap(y1, y2);
      std::swap(u1, u2);
      area = -area;
    } else if (job.cull_backfaces) {
      continue;  // clockwise on screen: a back face
    }

    // Edge k is opposite vertex k: w0 on v1 -> v2, w1 on v2 -> v0, w2 on v0 -> v1, with
    // w(p) = dx * (py - ay) - dy * (px - ax) >= 0 inside. Biased by -1 off top-left edges so
    // that "inside" is simply all three biased values >= 0.
    const i64 dx0 = x2 - x1, dy0 = y2 - y1;
    const i64 dx1 = x0 - x2, dy1 = y0 - y2;
    const i64 dx2 = x1 - x0, dy2 = y1 - y0;
    const i64 bias0 = is_top_left(dx0, dy0) ? 0 : -1;
    const i64 bias1 = is_top_left(dx1, dy1) ? 0 : -1;
    const i64 bias2 = is_top_left(dx2, dy2) ? 0 : -1;

    const i64 px = c_lo * kSub + kHalf;
    const i64 py = r_lo * kSub + kHalf;
    i64 row_w0 = dx0 * (py - y1) - dy0 * (px - x1) + bias0;
    i64 row_w1 = dx1 * (py - y2) - dy1 * (px - x2) + bias1;
    i64 row_w2 = dx2 * (py - y0) - dy2 * (px - x0) + bias2;
    const i64 step_x0 = -dy0 * kSub, step_x1 = -dy1 * kSub, step_x2 = -dy2 * kSub;
    const i64 step_y0 = dx0 * kSub, step_y1 = dx1 * kSub, step_y2 = dx2 * kSub;

    const double inv_area = 1.0 / static_cast<double>(area);
    const double z0 = verts[3 * i64{u0} + 2];
    const double z1 = verts[3 * i64{u1} + 2];
    const double z2 = verts[3 * i64{u2} + 2];
    const float* a0 = attrs + i64{u0} * nc;
    const float* a1 = attrs + i64{u1} * nc;
    const float* a2 = attrs + i64{u2} * nc;
    const auto tid = static_cast<std::int32_t>(t);

    // Depth test and writes of pixel (r, c) given its biased edge values w1, w2.
    auto shade = [&](i64 r, i64 c, i64 w1, i64 w2) {
      const double b1 = static_cast<double>(w1 - bias1) * inv_area;
      const double b2 = static_cast<double>(w2 - bias2) * inv_area;
      const double b0 = 1.0 - b1 - b2;
      const auto z = static_cast<float>(b0 * z0 + b1 * z1 + b2 * z2);
      const i64 p = r * width + c;
      if (z > out.depth[p]) {
        out.depth[p] = z;
        out.tri_id[p] = tid;
        float* px_out = out.image + p * nc;
        for (i64 k = 0; k < nc; ++k) {
          px_out[k] = static_cast<float>(b0 * a0[k] + b1 * a1[k] + b2 * a2[k]);
        }
        if (out.bary != nullptr) {
          out.bary[3 * p] = static_cast<float>(b0);
          out.bary[3 * p + 1] = static_cast<float>(swapped ? b2 : b1);
          out.bary[3 * p + 2] = static_cast<float>(swapped ? b1 : b2);
        }
      }
    };

    if (x_extent < kTile * kSub && y_extent < kTile * kSub) {
      // Small triangle (the common case for face meshes): coverage of the kTile x kTile
      // pixels from (r_lo, c_lo) as a branch-free bit mask, then only covered pixels are
      // visited. Every edge value here is below 2^23 in magnitude, so int32 is exact.
      const i64 n_rows = r_hi - r_lo + 1;
      const i64 n_cols = c_hi - c_lo + 1;
      const auto e0 = static_cast<std::int32_t>(row_w0);
      const auto e1 = static_cast<std::int32_t>(row_w1);
      const auto e2 = static_cast<std::int32_t>(row_w2);
      const auto sx0 = static_cast<std::int32_t>(step_x0);
      const auto sx1 = static_cast<std::int32_t>(step_x1);
      const auto sx2 = static_cast<std::int32_t>(step_x2);
      const auto sy0 = static_cast<std::int32_t>(step_y0);
      const auto sy1 = static_cast<std::int32_t>(step_y1);
      const auto sy2 = static_cast<std::int32_t>(step_y2);
      std::uint32_t mask = 0;
      for (int i = 0; i < kTile; ++i) {
        for (int j = 0; j < kTile; ++j) {
          const std::int32_t v0 = e0 + i * sy0 + j * sx0;
          const std::int32_t v1 = e1 + i * sy1 + j * sx1;
          const std::int32_t v2 = e2 + i * sy2 + j * sx2;
          const bool in = ((v0 | v1 | v2) >= 0) & (i < n_rows) & (j < n_cols);
          mask |= static_cast<std::uint32_t>(in) << (i * kTile + j);
        }
      }
      while (mask != 0) {
        const int bit = lowest_bit(mask);
        mask &= mask - 1;
        const i64 i = bit / kTile;
        const i64 j = bit % kTile;
        shade(r_lo + i, c_lo + j, row_w1 + i * step_y1 + j * step_x1,
              row_w2 + i * step_y2 + j * step_x2);
      }
      continue;
    }

    for (i64 r = r_lo; r <= r_hi; ++r) {
      i64 w0 = row_w0, w1 = row_w1, w2 = row_w2;
      for (i64 c = c_lo; c <= c_hi; ++c) {
        if ((w0 | w1 | w2) >= 0) shade(r, c, w1, w2);
        w0 += step_x0;
        w1 += step_x1;
        w2 += step_x2;
      }
      row_w0 += step_y0;
      row_w1 += step_y1;
      row_w2 += step_y2;
    }
  }
}

// One work item: rows [row0, row1) of mesh b.
void render_item(const RenderJob& job, i64 b, int row0, int row1, Scratch& s) {
  const i64 pixels = i64{job.height} * job.width;
  const float* verts = job.vertices + b * job.n_vertices * 3;
  const float* attrs =
      job.attributes + (job.attributes_per_mesh ? b * job.n_vertices * job.channels : 0);
  const MeshOut out{
      job.image + b * pixels * job.channels,
      job.depth + b * pixels,
      job.triangle_id + b * pixels,
      job.barycentrics != nullptr ? job.barycentrics + b * pixels * 3 : nullptr,
  };

  snap_vertices(verts, job.n_vertices, s);
  const i64 first = i64{row0} * job.width;
  const i64 last = i64{row1} * job.width;
  std::fill(out.depth + first, out.depth + last, -std::numeric_limits<float>::infinity());
  std::fill(out.tri_id + first, out.tri_id + last, -1);
  std::fill(out.image + first * job.channels, out.image + last * job.channels, job.background);
  if (out.bary != nullptr) std::fill(out.bary + 3 * first, out.bary + 3 * last, 0.0f);
  switch (job.channels) {
    case 1: rasterize_band<1>(job, verts, attrs, s, row0, row1, out); break;
    case 2: rasterize_band<2>(job, verts, attrs, s, row0, row1, out); break;
    case 3: rasterize_band<3>(job, verts, attrs, s, row0, row1, out); break;
    case 4: rasterize_band<4>(job, verts, attrs, s, row0, row1, out); break;
    default: rasterize_band<0>(job, verts, attrs, s, row0, row1, out); break;
  }
}

}  // namespace

void render(const RenderJob& job, int num_threads) {
  if (job.batch <= 0) return;
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  num_threads = std::max(num_threads, 1);

  // Whole meshes when there are enough of them, else each mesh cut into row bands.
  const i64 bands =
      std::clamp<i64>((num_threads + job.batch - 1) / job.batch, 1, job.height);
  const i64 items = job.batch * bands;
  const int workers = static_cast<int>(std::min<i64>(num_threads, items));

  // Scratch is allocated here so that a failed allocation throws in the calling thread.
  std::vector<Scratch> scratch(static_cast<std::size_t>(workers));
  for (Scratch& s : scratch) {
    s.sx.resize(static_cast<std::size_t>(job.n_vertices));
    s.sy.resize(static_cast<std::size_t>(job.n_vertices));
  }

  std::atomic<i64> next{0};
  auto work = [&job, &next, items, bands](Scratch& s) {
    for (i64 item = next.fetch_add(1); item < items; item = next.fetch_add(1)) {
      const i64 b = item / bands;
      const i64 band = item % bands;
      const auto row0 = static_cast<int>(band * job.height / bands);
      const auto row1 = static_cast<int>((band + 1) * job.height / bands);
      render_item(job, b, row0, row1, s);
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers - 1));
  for (int w = 1; w < workers; ++w) {
    try {
      threads.emplace_back(work, std::ref(scratch[static_cast<std::size_t>(w)]));
    } catch (const std::system_error&) {
      break;  // no more threads available: the ones started and this one finish the work
    }
  }
  work(scratch[0]);
  for (std::thread& th : threads) th.join();
}

}  // namespace pnccrender
