using Sharpen.Tasks;
namespace Sharpen.Data;

/// <summary>What <see cref="DatasetWriter.MakeDataset(Sharpen.Tasks.IVerifiableTask,int,int,string,double)"/> wrote.</summary>
/// <param name="Files">The files written: one, or the train file then the test file.</param>
/// <param name="TrainCount">Rows in the train file (or the only file).</param>
/// <param name="TestCount">Rows in the test file (0 without a split).</param>
/// <param name="Requested">How many distinct problems were asked for. When the task has fewer distinct
/// problems than that (Game24 has about 1,360), fewer are written and this says so.</param>
/// <param name="DuplicatesSkipped">Generated problems dropped because an equal problem was already kept.</param>
public sealed record MakeDatasetResult(IReadOnlyList<string> Files, int TrainCount, int TestCount, int Requested, int DuplicatesSkipped);
