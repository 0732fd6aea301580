import CHDF5
import Foundation

extension HDF5Group {
    /// The text netCDF-4 writes as the `NAME` of a dimension scale that is a dimension only, not a
    /// variable; h5netcdf (xarray's `engine="h5netcdf"`) reads it so and shows no extra variable.
    static let netCDFDimensionOnly = "This is a netCDF dimension but not a netCDF variable."

    /// Turns the `dims` labels of the datasets in `groups` into netCDF-4 dimensions, so that xarray
    /// opens them with named dimensions (`pos`, `d_model`) rather than `phony_dim_*`: one dimension
    /// scale per name, created in this group (netCDF dimensions are seen by every group below the
    /// one that defines them, so `activations/` and `prompts/` keep only their own datasets for
    /// h5py readers), attached to each dataset's dimensions (HDF5's `DIMENSION_LIST` and
    /// `REFERENCE_LIST`, from libhdf5_hl). A scale holds 0..<size (int32), for h5py readers.
    ///
    /// Called once the datasets have their final sizes (appendable ones grow while written). A name
    /// whose datasets disagree on its size (a stitched block with its own head count) gets the size
    /// seen first; the others keep that dimension unattached (xarray names it `phony_dim_*`). A name
    /// taken by another member of this group is left out the same way.
    func attachDimensionScales(to groups: [String]) throws {
        var labelled: [(dataset: HDF5Dataset, dims: [String], shape: [Int])] = []
        for name in groups where exists(name) {
            let group = try group(name)
            for child in try group.childNames() where try group.objectInfo(child).kind == .dataset {
                let dataset = try group.dataset(child)
                guard dataset.hasAttribute("dims") else { continue }
                let dims = try dataset.stringAttribute("dims").split(separator: ",").map(String.init)
                let shape = try dataset.shape
                guard dims.count == shape.count else { continue }
                labelled.append((dataset, dims, shape))
            }
        }
        var sizes: [String: Int] = [:]
        for (_, dims, shape) in labelled {
            for (name, size) in zip(dims, shape) where sizes[name] == nil { sizes[name] = size }
        }
        var scales: [String: HDF5Dataset] = [:]
        for (name, size) in sizes.sorted(by: { $0.key < $1.key }) where !exists(name) {
            let scale = try writeInt32(name, (0..<size).map(Int32.init), shape: [size])
            let label = Self.netCDFDimensionOnly + String(repeating: " ", count: max(0, 10 - String(size).count)) + String(size)
            try file.check(H5DSset_scale(scale.id, label), "making a dimension scale of", scale.path)
            scales[name] = scale
        }
        for (dataset, dims, shape) in labelled {
            for (i, (name, size)) in zip(dims, shape).enumerated() {
                guard let scale = scales[name], sizes[name] == size else { continue }
                try file.check(H5DSattach_scale(dataset.id, scale.id, UInt32(i)), "attaching dimension \(name) to", dataset.path)
            }
        }
    }
}
