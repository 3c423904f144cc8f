import ArgumentParser
import Checkpoint
import Foundation
import Images

/// The kinds of file the tool writes, each recognised by its name's extension and, when it already exists, by its
/// first bytes: an output never replaces an input, nor a file of another kind.
enum OutputKind: String {
    case npy = ".npy"
    case safetensors = ".safetensors"

    /// Whether `head` (a file's first bytes) is a file of this kind.
    func matches(_ head: [UInt8]) -> Bool {
        switch self {
        case .npy: head.starts(with: NumPyArray.magic)
        case .safetensors: SafeTensors.hasSignature(head)
        }
    }
}

/// The first `count` bytes of the file at `url` (fewer for a shorter file, none for one that cannot be read).
func firstBytes(of url: URL, count: Int = 16) -> [UInt8] {
    guard let handle = try? FileHandle(forReadingFrom: url) else { return [] }
    defer { try? handle.close() }
    return [UInt8]((try? handle.read(upToCount: count)) ?? Data())
}

/// Checks, before any work, that `path` may be written as a file of `kind`: the right extension, not one of
/// `inputs`, a folder that exists, and no existing file of another kind in the way.
func checkOutput(_ path: String, option: String, kind: OutputKind, inputs: [String]) throws {
    guard path.lowercased().hasSuffix(kind.rawValue) else {
        throw ValidationError("\(option) must name a \(kind.rawValue) file; got '\(path)'.")
    }
    let target = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath()
    for input in inputs where URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath() == target {
        throw ValidationError("\(option) \(path) is also an input; it would be overwritten. Name another file.")
    }
    try checkWritable(path, option: option)
    if FileManager.default.fileExists(atPath: target.path), !kind.matches(firstBytes(of: target)) {
        throw ValidationError(
            "\(option) \(path) exists and is not a \(kind.rawValue) file; not replacing it. Name another file.")
    }
}

/// Checks, before any work, that a file can be written at `path`: its folder exists and takes new files (tried by
/// creating and removing one), and an existing file there is a writable file, not a folder.
func checkWritable(_ path: String, option: String) throws {
    let manager = FileManager.default
    let target = URL(fileURLWithPath: path).standardizedFileURL
    var isDirectory: ObjCBool = false
    let folder = target.deletingLastPathComponent()
    guard manager.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ValidationError("\(option) \(path): the folder \(folder.path) does not exist.")
    }
    if manager.fileExists(atPath: target.path, isDirectory: &isDirectory) {
        guard !isDirectory.boolValue else { throw ValidationError("\(option) \(path) is a folder.") }
        guard manager.isWritableFile(atPath: target.path) else {
            throw ValidationError("\(option) \(path) exists and cannot be written (permission denied).")
        }
        return
    }
    let probe = folder.appendingPathComponent(".bossnet-write-check-\(getpid())")
    let descriptor = open(probe.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard descriptor >= 0 else {
        let reason = String(cString: strerror(errno))
        throw ValidationError(
            "\(option) \(path): cannot create files in \(folder.path) (\(reason)). Name another place.")
    }
    close(descriptor)
    unlink(probe.path)
}

/// Writes `array` to `path`; where that fails after the work is done, writes it to the temporary folder instead and
/// says where, so no result is lost. Returns whether `path` was written.
func saveKeepingResults(_ array: NumPyArray, to path: String) -> Bool {
    do {
        try writing(path) { try array.write(to: URL(fileURLWithPath: path)) }
        return true
    } catch {
        let fallback = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bossnet-\(getpid())-" + URL(fileURLWithPath: path).lastPathComponent)
        if (try? array.write(to: fallback)) != nil {
            note("error: \(error); the results were written to \(fallback.path) instead.")
        } else {
            note(
                "error: \(error), and the temporary folder \(fallback.deletingLastPathComponent().path) refused them too."
            )
        }
        return false
    }
}

/// A file that could not be written; nothing is left behind (files are written beside and renamed into place).
struct WriteError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot write \(path): \(reason)" }

    /// Describes a Foundation error by its POSIX cause where it has one, never as a raw NSError dump.
    init(path: String, _ error: Error) {
        self.path = path
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else if ns.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileWriteOutOfSpace: reason = "no space left on the device"
            case .fileWriteNoPermission: reason = "permission denied"
            case .fileWriteVolumeReadOnly: reason = "the volume is read-only"
            case .fileNoSuchFile, .fileWriteInvalidFileName: reason = "the folder does not exist or the name is invalid"
            default: reason = "the file system refused it (error \(ns.code))"
            }
        } else {
            reason = "\(error)"
        }
    }
}

/// Runs `write` (an atomic write of `path`), turning a failure into a ``WriteError``.
func writing(_ path: String, _ write: () throws -> Void) throws {
    do { try write() } catch { throw WriteError(path: path, error) }
}
