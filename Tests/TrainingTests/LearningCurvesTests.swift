import Foundation
import Images
import Testing

@testable import Training

private func record(_ epoch: Int, loss: Double, test: Double, acc1: Double, ema: Double?) -> EpochRecord {
    EpochRecord(
        epoch: epoch, trainLR: 1e-3, trainLoss: loss, trainThroughput: 10, testLoss: test, testAcc1: acc1,
        testAcc5: 100, testEMALoss: ema.map { _ in test }, testEMAAcc1: ema, testEMAAcc5: ema.map { _ in 100 },
        parameters: 1)
}

@Test("curves.png: each epoch's losses and top-1 drawn where the axes put them, written as a PNG that reads back")
func learningCurves() throws {
    // A resumed run's log repeats epoch 1: the later record is the one drawn.
    let records = [
        record(0, loss: 2.3, test: 2.2, acc1: 10, ema: 9), record(1, loss: 9, test: 9, acc1: 0, ema: 0),
        record(1, loss: 1.5, test: 1.2, acc1: 60, ema: 40), record(2, loss: 0.7, test: 0.9, acc1: 90, ema: 75),
    ]
    let picture = LearningCurves.picture(records)
    let canvas = Canvas(picture)
    #expect(LearningCurves.niceCeiling(2.3) == 5 && LearningCurves.niceCeiling(0.7) == 1)
    let loss = Panel(left: 0, title: "", lastEpoch: 2, top: 5)
    let accuracy = Panel(left: LearningCurves.panelWidth, title: "", lastEpoch: 2, top: 100)
    for (epoch, record) in [(0, records[0]), (1, records[2]), (2, records[3])] {
        let train = loss.point(epoch: epoch, value: record.trainLoss)
        let test = loss.point(epoch: epoch, value: record.testLoss)
        let top1 = accuracy.point(epoch: epoch, value: record.testAcc1)
        let ema = accuracy.point(epoch: epoch, value: record.testEMAAcc1 ?? -1)
        #expect(canvas.color(train.x, train.y) == LearningCurves.blue, "train loss at epoch \(epoch)")
        #expect(canvas.color(test.x, test.y) == LearningCurves.orange, "validation loss at epoch \(epoch)")
        #expect(canvas.color(top1.x, top1.y) == LearningCurves.blue, "top-1 at epoch \(epoch)")
        #expect(canvas.color(ema.x, ema.y) == LearningCurves.green, "EMA top-1 at epoch \(epoch)")
    }
    // The superseded record of epoch 1 (loss 9, top-1 0) is not drawn.
    let stale = loss.point(epoch: 1, value: 9)
    #expect(canvas.color(stale.x, stale.y) != LearningCurves.blue)

    let url = FileManager.default.temporaryDirectory.appendingPathComponent("curves-\(UUID().uuidString).png")
    defer { try? FileManager.default.removeItem(at: url) }
    try picture.writePNG(to: url)
    #expect(try RGBImage(contentsOf: url) == picture)
    #expect(throws: PNGWriteError.self) {
        try picture.writePNG(to: URL(fileURLWithPath: "/nonexistent-folder/curves.png"))
    }
}
