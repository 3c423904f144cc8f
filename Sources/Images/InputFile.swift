import Foundation

/// A file given to classify: a PNG or JPEG (told apart by their first bytes, whatever the name), taken through the
/// evaluation preprocessing, or a NumPy `.npy` of float32 `[3, S, S]` or `[N, 3, S, S]`, taken as already
/// preprocessed.
public enum InputFile {
    /// One preprocessed image from an input file, named after it (`file.npy[2]` for the third of an array).
    public struct Image: Sendable {
        public let name: String
        /// `[3, S, S]` values.
        public let tensor: [Float]
    }

    /// What to do with an `.npy` holding NaN or infinity.
    public enum NonFinite: Sendable {
        /// Refuse it (``InputError/nonFinite(path:index:value:)``).
        case reject
        /// Take it, calling the closure with where the first such element is.
        case allow(@Sendable (_ index: [Int], _ value: Float) -> Void)
    }

    /// The preprocessed images of the file at `url` for a network of input side `inputSize`.
    public static func load(_ url: URL, inputSize: Int, nonFinite: NonFinite = .reject) throws -> [Image] {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw InputError.missing(path: path) }
        guard ImageFormat(contentsOf: url) == .npy else {
            return [
                Image(
                    name: path,
                    tensor: try Preprocess.evaluationTensor(try RGBImage(contentsOf: url), inputSize: inputSize)
                )
            ]
        }
        let array = try NumPyArray(contentsOf: url)
        if let bad = array.firstNonFinite {
            switch nonFinite {
            case .reject: throw InputError.nonFinite(path: path, index: bad.index, value: bad.value)
            case let .allow(warn): warn(bad.index, bad.value)
            }
        }
        let single = [3, inputSize, inputSize]
        if array.shape == single { return [Image(name: path, tensor: array.values)] }
        guard array.shape.count == 4, Array(array.shape.dropFirst()) == single else {
            throw InputError.wrongShape(path: path, shape: array.shape, inputSize: inputSize)
        }
        let size = single.reduce(1, *)
        return (0..<array.shape[0]).map { index in
            Image(name: "\(path)[\(index)]", tensor: Array(array.values[(index * size)..<((index + 1) * size)]))
        }
    }
}

/// An input file that cannot be classified as it is.
public enum InputError: Error, CustomStringConvertible, Equatable {
    /// No file at the path.
    case missing(path: String)
    /// An `.npy` holding NaN or infinity (the first at `index`).
    case nonFinite(path: String, index: [Int], value: Float)
    /// An `.npy` of a shape that is not `[3, S, S]` or `[N, 3, S, S]` for the input size.
    case wrongShape(path: String, shape: [Int], inputSize: Int)

    public var description: String {
        switch self {
        case let .missing(path): "\(path) does not exist"
        case let .nonFinite(path, index, value):
            "\(path): element \(index) is \(value) (NaN or infinity)"
        case let .wrongShape(path, shape, size):
            "\(path) has shape \(shape); at input size \(size) it must be [3, \(size), \(size)] or [N, 3, \(size), \(size)]"
        }
    }
}
