import Foundation

/// One labelled image of an ``ImageSet``.
public struct LabelledImage: Sendable, Hashable, Codable {
    /// The path relative to the set's folder, with `/` separators.
    public let path: String
    /// The class index (0 ..< 1000 for ImageNet).
    public let label: Int

    public init(path: String, label: Int) {
        self.path = path
        self.label = label
    }
}

/// A problem with an image set, its labels file or a shard specification.
public struct ImageSetError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A labelled image set: a folder in torchvision's ImageFolder layout (one subfolder per class, classes numbered in
/// sorted order), or a folder with a labels file of `relative/path class_index` lines (as the ImageNet validation set
/// is often relabelled). Images are kept in sorted path order, so every machine sees the same set in the same order.
public struct ImageSet: Sendable {
    /// The folder that the images' paths are relative to.
    public let root: URL
    /// The images, sorted by path (by Unicode code points, as Python sorts).
    public private(set) var images: [LabelledImage]
    /// The class names in index order (the ImageFolder layout's folders), or empty with a labels file.
    public let classes: [String]

    /// The file extensions torchvision's ImageFolder takes (compared without case); other files are skipped.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"]

    /// Builds a set from explicit images.
    public init(root: URL, images: [LabelledImage], classes: [String] = []) {
        self.root = root
        self.images = images.sorted { Self.precedes($0.path, $1.path) }
        self.classes = classes
    }

    /// The ImageFolder layout: each subfolder of `root` is a class, numbered in sorted order; every file below it
    /// (subfolders and symbolic links followed) with an image extension is one of its images.
    public init(imageFolder root: URL) throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImageSetError("\(root.path) is not a folder")
        }
        let entries = try manager.contentsOfDirectory(atPath: root.path)
        let classes = entries.filter { name in
            var folder: ObjCBool = false
            return manager.fileExists(atPath: root.appendingPathComponent(name).path, isDirectory: &folder)
                && folder.boolValue
        }.sorted(by: Self.precedes)
        guard !classes.isEmpty else {
            throw ImageSetError(
                "\(root.path) has no class folders: the ImageFolder layout is one subfolder per class (or give --labels)"
            )
        }
        var images: [LabelledImage] = []
        for (label, name) in classes.enumerated() {
            let folder = root.appendingPathComponent(name)
            guard let walker = manager.enumerator(at: folder, includingPropertiesForKeys: [.isDirectoryKey]) else {
                continue
            }
            for case let url as URL in walker {
                guard Self.imageExtensions.contains(url.pathExtension.lowercased()),
                    (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) != true
                else { continue }
                let relative = String(url.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count + 1))
                images.append(LabelledImage(path: "\(name)/\(relative)", label: label))
            }
        }
        self.init(root: root, images: images, classes: classes)
    }

    /// A folder of images and a labels file of `relative/path class_index` lines (blank lines and lines starting
    /// with `#` are skipped). Every listed image must exist.
    public init(root: URL, labelsFile: URL, classCount: Int = 1000) throws {
        guard let text = try? String(contentsOf: labelsFile, encoding: .utf8) else {
            throw ImageSetError("cannot read the labels file \(labelsFile.path)")
        }
        var images: [LabelledImage] = []
        var seen = Set<String>()
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(where: { $0 == " " || $0 == "\t" }),
                let label = Int(line[line.index(after: space)...]), (0..<classCount).contains(label)
            else {
                throw ImageSetError(
                    "\(labelsFile.lastPathComponent) line \(number + 1): expected 'relative/path class_index' with a class index from 0 to \(classCount - 1); got '\(line)'"
                )
            }
            let path = line[..<space].trimmingCharacters(in: .whitespaces)
            guard !path.isEmpty, seen.insert(path).inserted else {
                throw ImageSetError(
                    "\(labelsFile.lastPathComponent) line \(number + 1): '\(path)' is empty or listed twice")
            }
            guard FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path) else {
                throw ImageSetError(
                    "\(labelsFile.lastPathComponent) line \(number + 1): \(root.appendingPathComponent(path).path) does not exist"
                )
            }
            images.append(LabelledImage(path: path, label: label))
        }
        guard !images.isEmpty else { throw ImageSetError("\(labelsFile.path) lists no images") }
        self.init(root: root, images: images)
    }

    /// Shard `index` of `count`: the images whose position in the sorted set is `index` modulo `count`, so that
    /// shards are disjoint, cover the set, and each holds a similar mix of classes.
    public func shard(_ shard: Shard) -> ImageSet {
        var copy = self
        copy.images = images.enumerated().filter { $0.offset % shard.count == shard.index }.map(\.element)
        return copy
    }

    /// Python's string order (Unicode code points; UTF-8 byte order is the same).
    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
}

/// Part `index` (from 0) of `count` parts of a set: `--shard 3/8`, or a scheduler's array index.
public struct Shard: Sendable, Hashable, Codable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, (0..<count).contains(index) else {
            throw ImageSetError(
                "a shard is K/N with 0 <= K < N (K counts from 0, as Slurm's and Kubernetes' array indices do); got \(index)/\(count)"
            )
        }
        self.init(checked: index, count)
    }

    private init(checked index: Int, _ count: Int) {
        self.index = index
        self.count = count
    }

    /// Parses `K/N`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            throw ImageSetError("a shard is K/N, for example 0/4; got '\(text)'")
        }
        try self.init(index: index, count: count)
    }

    /// The whole set.
    public static let whole = Shard(checked: 0, 1)

    public var description: String { "\(index)/\(count)" }
}
