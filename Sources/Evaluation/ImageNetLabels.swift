import Foundation

/// The 1000 ImageNet class names, by class index: `Resources/imagenet_classes.txt` (one name a line, a copy of
/// shared/data/imagenet_classes.txt), embedded in the binary at build time.
public enum ImageNetLabels {
    public static let names: [String] = String(decoding: PackageResources.imagenet_classes_txt, as: UTF8.self)
        .split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
}
