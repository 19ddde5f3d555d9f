using Sharpen.Training;
using Sharpen.Recipes;
using Sharpen.Training.RewardModels;
using Sharpen.Data;

namespace Sharpen.Cli.Commands;

/// <summary>The <c>sharpen train</c> branch for <c>kind: prm</c> and <c>kind: implicit_prm</c> recipes.</summary>
static class ProcessRewardTraining
{
    public static int Run(Recipe r, string name, bool resume, CancellationToken ct)
    {
        string line;
        if (r.Kind == "prm")
        {
            var result = ProcessRewardPipelines.RunPrm(r, Console.WriteLine, resume, ct);
            var res = result.Result;
            line = $"prm: {res.Steps} steps on {result.Solutions} solutions" + (result.SkippedLines > 0 ? $" ({result.SkippedLines} lines skipped)" : "") +
                $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {res.FinalLoss:F4}, step accuracy {res.FinalStepAccuracy:P0}" +
                (res.HeldOutFirstError is { } f ? $"; held-out ({result.HeldOut}) step accuracy {res.HeldOutStepAccuracy:P0}, first-wrong-step F1 {f.F1:F3}" : "") +
                $"; checkpoint {res.FinalCheckpoint}.";
        }
        else
        {
            var result = ProcessRewardPipelines.RunImplicit(r, Console.WriteLine, resume, ct);
            var res = result.Result;
            line = $"implicit prm ({r.ImplicitPrmOptions().Loss}): {res.Steps} steps on {res.Examples} {(r.ImplicitPrmOptions().Loss == "dpo" ? "pairs" : "completions")}" +
                (result.SkippedLines > 0 ? $" ({result.SkippedLines} lines skipped)" : "") +
                $", {result.Parameters:N0} parameters, {result.Seconds:F0} s; final loss {res.FinalLoss:F4}, accuracy {res.FinalAccuracy:P0}; checkpoint {res.FinalCheckpoint}.";
        }
        Console.WriteLine(line);
        var metrics = new RunLog(r.Output, append: true).ReadMetrics();
        Console.WriteLine($"report: {RunReport.Write(r.Output, $"sharpen train {name}", metrics, [line], lossTitle: r.Kind == "prm" ? "PRM loss (step BCE)" : "Implicit-PRM loss")}");
        return 0;
    }
}
