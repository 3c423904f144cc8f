import Foundation

/// Checks a zip file's directory before ZIPFoundation reads it: ZIPFoundation traps (a Swift runtime failure, which
/// ends the program) on offsets that do not fit a file offset, and a hostile checkpoint can hold any offset. This reads
/// what ZIPFoundation will read, where it reads it (the end-of-central-directory record, the ZIP64 one, and every
/// central directory entry with its ZIP64 extra field) and requires every offset and size to lie inside the file.
enum ZipCheck {
    static func validate(_ url: URL) throws {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw CheckpointError.unreadable("\(url.path) cannot be opened")
        }
        defer { try? handle.close() }
        guard let fileSize = try? handle.seekToEnd(), fileSize >= 22 else { throw bad("shorter than a zip directory") }
        func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
            guard offset <= fileSize, UInt64(count) <= fileSize - offset else {
                throw bad("an offset points past the end of the file")
            }
            try handle.seek(toOffset: offset)
            let bytes = [UInt8]((try? handle.read(upToCount: count)) ?? Data())
            guard bytes.count == count else { throw bad("the file ends early") }
            return bytes
        }
        func integer(_ bytes: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
            (0..<width).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[at + $1]) }
        }

        // The end-of-central-directory record: the last signature in the final 64 KiB + 22 bytes, as ZIPFoundation finds it.
        let tailStart = fileSize > 65_557 ? fileSize - 65_557 : 0
        let tail = try read(tailStart, Int(fileSize - tailStart))
        guard
            let end = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
                integer(tail, $0, 4) == 0x0605_4B50
            })
        else {
            throw bad("no end-of-central-directory record")
        }
        var entries = integer(tail, end + 10, 2), directorySize = integer(tail, end + 12, 4),
            directoryOffset = integer(tail, end + 16, 4)
        // ZIP64: ZIPFoundation takes the ZIP64 locator from just before the record and the ZIP64 record from just before
        // the locator (not from the locator's offset field), and uses that record's figures whenever both signatures are
        // there, whatever the classic record says. So does this check.
        let endOffset = tailStart + UInt64(end)
        if endOffset > 20 + 56 {
            let locator = try read(endOffset - 20, 20), record = try read(endOffset - 20 - 56, 56)
            if integer(locator, 0, 4) == 0x0706_4B50 && integer(record, 0, 4) == 0x0606_4B50 {
                (entries, directorySize, directoryOffset) = (
                    integer(record, 32, 8), integer(record, 40, 8), integer(record, 48, 8)
                )
            }
        }
        guard directoryOffset <= fileSize, directorySize <= fileSize - directoryOffset, entries <= directorySize / 46
        else {
            throw bad("its central directory does not fit in the file")
        }

        // Every entry of the central directory, and the local header it points at.
        let directory = try read(directoryOffset, Int(directorySize))
        var position = 0
        for _ in 0..<entries {
            guard position + 46 <= directory.count, integer(directory, position, 4) == 0x0201_4B50 else {
                throw bad("a central directory entry is damaged")
            }
            let nameLength = Int(integer(directory, position + 28, 2)),
                extraLength = Int(integer(directory, position + 30, 2))
            let commentLength = Int(integer(directory, position + 32, 2))
            let next = position + 46 + nameLength + extraLength + commentLength
            guard next <= directory.count else { throw bad("a central directory entry runs past the directory") }
            var compressed = integer(directory, position + 20, 4), uncompressed = integer(directory, position + 24, 4)
            var localOffset = integer(directory, position + 42, 4)
            // The ZIP64 extra field (id 1) holds, in this order, whichever of the three were 0xFFFFFFFF.
            var extra = position + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = integer(directory, extra, 2), size = Int(integer(directory, extra + 2, 2))
                guard extra + 4 + size <= extraEnd else { throw bad("an extra field runs past its entry") }
                if id == 1 {
                    var values = [uncompressed, compressed, localOffset], field = extra + 4
                    for index in values.indices where values[index] == 0xFFFF_FFFF {
                        guard field + 8 <= extra + 4 + size else { throw bad("a ZIP64 extra field is too short") }
                        values[index] = integer(directory, field, 8)
                        field += 8
                    }
                    (uncompressed, compressed, localOffset) = (values[0], values[1], values[2])
                }
                extra += 4 + size
            }
            guard localOffset < fileSize, compressed <= fileSize else {
                throw bad("an entry's offset or size lies outside the file")
            }
            // What an entry may claim to hold: as much as it stores (torch.save stores without compression), or what
            // deflate can expand to (at most 1032 to 1), so that no claim makes the reader allocate more than that.
            let method = integer(directory, position + 10, 2)
            guard method == 0 ? uncompressed == compressed : uncompressed <= compressed * 1032 + 1024 else {
                throw bad("an entry claims to hold more than it can")
            }
            let local = try read(localOffset, 30)
            guard integer(local, 0, 4) == 0x0403_4B50 else { throw bad("an entry's local header is missing") }
            position = next
        }
    }

    private static func bad(_ what: String) -> CheckpointError {
        CheckpointError.malformed("not a readable zip archive (\(what))")
    }
}
