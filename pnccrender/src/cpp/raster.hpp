// pnccrender: a z-buffer triangle rasterizer on raw pointers (no Python, no pybind11).
//
// Conventions (shared with the Python facade and its docs):
//
// * Screen space: x to the right, y down, in pixels. Pixel (row i, column j) covers the square
//   [j, j+1) x [i, i+1); it is sampled at its centre (j + 0.5, i + 0.5).
// * x and y are snapped to a 1/256-pixel grid (round half to even) before rasterization, so
//   coverage is decided by exact 64-bit integer edge functions: triangles that share an edge
//   never both cover, nor both miss, a pixel whose centre lies on it.
// * Fill rule: top-left. A centre exactly on an edge is covered only if the edge is a top edge
//   (horizontal, the triangle below it) or a left edge (the triangle to its right).
// * z: larger is nearer the camera. The depth test keeps the nearest triangle; on an exact
//   tie (equal float32 depth) the triangle listed first wins.
// * Interpolation is linear in screen space (no perspective correction); the barycentric
//   weights come from the snapped x, y.
// * Front face: counter-clockwise as seen on the screen, i.e.
//   (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) < 0 in these y-down coordinates. That is the
//   OBJ / OpenGL winding (counter-clockwise seen from the front, as in the ICT model) after a
//   projection that flips y. Back faces are drawn unless cull_backfaces is set.
// * Skipped triangles: zero area after snapping, an index outside [0, n_vertices), or a vertex
//   with a non-finite coordinate or |x| or |y| > kMaxCoordinate pixels.
#pragma once

#include <cstdint>

namespace pnccrender {

// Vertices further than this from the origin (in pixels, x or y) make their triangles skipped;
// it keeps every 64-bit edge function exact.
inline constexpr double kMaxCoordinate = 1 << 20;
// Subpixel precision: x and y are snapped to multiples of 1 / kSubpixel pixel.
inline constexpr int kSubpixelBits = 8;
// The largest image side accepted.
inline constexpr int kMaxImageSide = 16384;

// One rendering call: B meshes of n_vertices vertices sharing n_triangles triangles.
// All arrays are C-contiguous. Pointers marked "may be null" are optional.
struct RenderJob {
  const float* vertices = nullptr;     // (B, N, 3): x, y in pixels, z (larger = nearer)
  const std::int32_t* triangles = nullptr;  // (T, 3) vertex indices
  const float* attributes = nullptr;   // (N, C), or (B, N, C) if attributes_per_mesh
  std::int64_t batch = 0;              // B >= 0
  std::int64_t n_vertices = 0;         // N >= 0
  std::int64_t n_triangles = 0;        // T >= 0
  std::int64_t channels = 0;           // C >= 0
  bool attributes_per_mesh = false;
  int height = 0;                      // H in [1, kMaxImageSide]
  int width = 0;                       // W in [1, kMaxImageSide]
  float background = 0.0f;             // image value where no triangle is drawn
  bool cull_backfaces = false;

  float* image = nullptr;              // out (B, H, W, C): interpolated attributes
  float* depth = nullptr;              // out (B, H, W): interpolated z, -inf where empty
  std::int32_t* triangle_id = nullptr;  // out (B, H, W): triangle index, -1 where empty
  float* barycentrics = nullptr;       // out (B, H, W, 3), may be null; 0 where empty
};

// Render every mesh of the job. Work is split into (mesh, row band) items run on up to
// num_threads threads (num_threads <= 0: std::thread::hardware_concurrency()). The result
// does not depend on the thread count. Sizes must already be valid (see RenderJob); invalid
// triangle indices are skipped, never read.
void render(const RenderJob& job, int num_threads);

}  // namespace pnccrender
