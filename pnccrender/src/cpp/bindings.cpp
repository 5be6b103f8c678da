// Python binding of the rasterizer kernel: argument checks, output allocation, GIL release.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "raster.hpp"

namespace py = pybind11;

namespace {

constexpr int kMaxThreads = 1024;

// The argument as a C-contiguous, aligned ndarray of dtype `dtype_name` ("float32" or
// "int32", native byte order); ValueError otherwise. Never copies.
py::array checked_array(const py::object& obj, const char* name, const char* dtype_name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::value_error(std::string(name) + " must be a numpy.ndarray, got " +
                          std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  const std::string dtype = py::str(arr.dtype());
  if (dtype != dtype_name) {
    throw py::value_error(std::string(name) + " must have dtype " + dtype_name +
                          " (native byte order), got " + dtype);
  }
  if ((arr.flags() & py::array::c_style) == 0) {
    throw py::value_error(std::string(name) +
                          " must be C-contiguous (use numpy.ascontiguousarray)");
  }
  if (reinterpret_cast<std::uintptr_t>(arr.data()) % arr.itemsize() != 0) {
    throw py::value_error(std::string(name) + " is not aligned to its item size");
  }
  return arr;
}

std::string shape_str(const py::array& arr) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    if (d > 0) s += ", ";
    s += std::to_string(arr.shape(d));
  }
  return s + (arr.ndim() == 1 ? ",)" : ")");
}

py::tuple render(const py::object& vertices_obj, const py::object& triangles_obj,
                 const py::object& attributes_obj, int height, int width, float background,
                 bool return_barycentrics, bool cull_backfaces, int num_threads) {
  const py::array vertices = checked_array(vertices_obj, "vertices", "float32");
  const py::array triangles = checked_array(triangles_obj, "triangles", "int32");
  const py::array attributes = checked_array(attributes_obj, "attributes", "float32");

  if (height < 1 || height > pnccrender::kMaxImageSide || width < 1 ||
      width > pnccrender::kMaxImageSide) {
    throw py::value_error("height and width must be in [1, " +
                          std::to_string(pnccrender::kMaxImageSide) + "], got " +
                          std::to_string(height) + " x " + std::to_string(width));
  }
  if (num_threads < 0 || num_threads > kMaxThreads) {
    throw py::value_error("num_threads must be in [0, " + std::to_string(kMaxThreads) +
                          "] (0: one per hardware thread), got " + std::to_string(num_threads));
  }

  const bool batched = vertices.ndim() == 3;
  if ((vertices.ndim() != 2 && !batched) || vertices.shape(vertices.ndim() - 1) != 3) {
    throw py::value_error("vertices must have shape (N, 3) or (B, N, 3), got " +
                          shape_str(vertices));
  }
  const std::int64_t batch = batched ? vertices.shape(0) : 1;
  const std::int64_t n_vertices = vertices.shape(batched ? 1 : 0);
  if (n_vertices > INT32_MAX) {
    throw py::value_error("vertices: at most 2**31 - 1 vertices per mesh");
  }
  if (triangles.ndim() != 2 || triangles.shape(1) != 3) {
    throw py::value_error("triangles must have shape (T, 3), got " + shape_str(triangles));
  }
  const std::int64_t n_triangles = triangles.shape(0);

  const bool per_mesh = attributes.ndim() == 3;
  if (attributes.ndim() != 2 && !per_mesh) {
    throw py::value_error("attributes must have shape (N, C) or (B, N, C), got " +
                          shape_str(attributes));
  }
  if (per_mesh && !batched) {
    throw py::value_error("attributes of shape (B, N, C) need vertices of shape (B, N, 3), got " +
                          shape_str(attributes) + " with vertices " + shape_str(vertices));
  }
  if ((per_mesh && attributes.shape(0) != batch) ||
      attributes.shape(per_mesh ? 1 : 0) != n_vertices) {
    throw py::value_error("attributes " + shape_str(attributes) + " do not match vertices " +
                          shape_str(vertices) + ": expected (N, C) or (B, N, C) with N = " +
                          std::to_string(n_vertices) + ", B = " + std::to_string(batch));
  }
  const std::int64_t channels = attributes.shape(attributes.ndim() - 1);

  const auto* tri = static_cast<const std::int32_t*>(triangles.data());
  for (std::int64_t i = 0; i < 3 * n_triangles; ++i) {
    if (tri[i] < 0 || tri[i] >= n_vertices) {
      throw py::value_error("triangles[" + std::to_string(i / 3) + ", " +
                            std::to_string(i % 3) + "] = " + std::to_string(tri[i]) +
                            " is outside [0, N) with N = " + std::to_string(n_vertices));
    }
  }

  std::vector<py::ssize_t> lead;
  if (batched) lead.push_back(batch);
  lead.push_back(height);
  lead.push_back(width);
  auto with = [&lead](py::ssize_t last) {
    std::vector<py::ssize_t> shape = lead;
    shape.push_back(last);
    return shape;
  };
  py::array_t<float> image(with(channels));
  py::array_t<float> depth(lead);
  py::array_t<std::int32_t> triangle_id(lead);
  py::object barycentrics = py::none();
  float* bary_ptr = nullptr;
  if (return_barycentrics) {
    py::array_t<float> bary(with(3));
    bary_ptr = bary.mutable_data();
    barycentrics = std::move(bary);
  }

  pnccrender::RenderJob job;
  job.vertices = static_cast<const float*>(vertices.data());
  job.triangles = tri;
  job.attributes = static_cast<const float*>(attributes.data());
  job.batch = batch;
  job.n_vertices = n_vertices;
  job.n_triangles = n_triangles;
  job.channels = channels;
  job.attributes_per_mesh = per_mesh;
  job.height = height;
  job.width = width;
  job.background = background;
  job.cull_backfaces = cull_backfaces;
  job.image = image.mutable_data();
  job.depth = depth.mutable_data();
  job.triangle_id = triangle_id.mutable_data();
  job.barycentrics = bary_ptr;
  {
    py::gil_scoped_release release;
    pnccrender::render(job, num_threads);
  }
  return py::make_tuple(image, depth, triangle_id, barycentrics);
}

}  // namespace

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
  m.doc() = "pnccrender._core: the C++ z-buffer rasterizer (use the pnccrender package API).";
  m.attr("MAX_IMAGE_SIDE") = pnccrender::kMaxImageSide;
  m.attr("MAX_COORDINATE") = pnccrender::kMaxCoordinate;
  m.attr("SUBPIXEL_BITS") = pnccrender::kSubpixelBits;
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("render", &render, py::arg("vertices"), py::arg("triangles"), py::arg("attributes"),
        py::arg("height"), py::arg("width"), py::arg("background") = 0.0f,
        py::arg("return_barycentrics") = false, py::arg("cull_backfaces") = false,
        py::arg("num_threads") = 0,
        R"doc(Rasterize B meshes sharing one triangle list, with a z-buffer.

Arguments are used in place, never copied: arrays must be numpy.ndarray, C-contiguous,
aligned, native byte order; anything else raises ValueError.

vertices: (N, 3) or (B, N, 3) float32, x and y in pixels (x right, y down, pixel centres at
    integer + 0.5), z larger = nearer. Triangles with a non-finite vertex or |x|, |y| greater
    than MAX_COORDINATE are skipped.
triangles: (T, 3) int32, indices in [0, N).
attributes: (N, C) float32 shared by all meshes, or (B, N, C) with (B, N, 3) vertices.
height, width: image size in [1, MAX_IMAGE_SIDE].
background: image value where no triangle is drawn.
return_barycentrics: also return the barycentric weights.
cull_backfaces: skip back faces: triangles clockwise as seen on the screen (y down).
num_threads: worker threads, 0 = one per hardware thread, at most MAX_THREADS.

Returns (image, depth, triangle_id, barycentrics): (H, W, C) float32, (H, W) float32 (-inf
where empty), (H, W) int32 (-1 where empty), (H, W, 3) float32 or None; with a leading B axis
for batched vertices. The GIL is released while rendering.)doc");
}
