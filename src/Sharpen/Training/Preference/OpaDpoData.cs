using System.Text.Json.Nodes;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Training.Preference;

/// <summary>What <see cref="OpaDpoData.Build"/> produced.</summary>
/// <param name="Sft">The revisions as SFT rows (stage 1: make them on-policy for the model that becomes DPO's reference).</param>
/// <param name="Pairs">(prompt, revision, original sample) pairs for DPO (stage 2).</param>
/// <param name="Correct">Samples the verifier accepted (nothing to revise; no pair).</param>
/// <param name="BadRevisions">Wrong samples whose revision the verifier also rejected (dropped).</param>
public sealed record OpaDpoDataResult(IReadOnlyList<SftExample> Sft, IReadOnlyList<PreferenceExample> Pairs, int Correct, int BadRevisions);

/// <summary>
/// OPA-DPO's data (Yang et al. 2025, "Mitigating Hallucinations in Large Vision-Language Models via DPO: On-Policy Data
/// Hold the Key", arXiv:2501.09695), in text: the policy's own samples are checked by the task's verifier; each wrong one
/// is revised by an expert — by default the verifier's corrected answer (the task's worked solution), or any reviser
/// such as a judge model — and the revision must itself verify. The revisions are first learned by SFT, so that the
/// model DPO starts from and keeps as its reference already gives them high likelihood (the paper's point: off-policy
/// chosen answers are held back by the KL to the reference); then DPO takes each revision as chosen and the original
/// sample as rejected. Departures: the paper revises only the hallucinated spans with GPT-4V, its LoRA-SFT also takes
/// ground-truth descriptions, and its DPO loss adds language, image-focus and anchored terms; here the whole answer is
/// replaced, the DPO loss is plain DPO, and the stages are two recipes over the files this writes.
/// </summary>
public static class OpaDpoData
{
    /// <summary>SFT rows and DPO pairs from on-policy <paramref name="samples"/> of <paramref name="task"/>'s problems;
    /// <paramref name="revise"/> (problem, wrong sample) → revision, default the task's worked solution.</summary>
    public static OpaDpoDataResult Build(IVerifiableTask task, IReadOnlyList<(Problem Problem, string Sample)> samples, Func<Problem, string, string>? revise = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        var sft = new List<SftExample>();
        var pairs = new List<PreferenceExample>();
        int correct = 0, bad = 0;
        foreach (var (problem, sample) in samples)
        {
            if (task.Verify(problem, sample).Correct) { correct++; continue; }
            var revision = revise is null ? task.Solve(problem) : revise(problem, sample);
            if (!task.Verify(problem, revision).Correct) { bad++; continue; }
            var fields = new Dictionary<string, string>(problem.Fields) { ["id"] = problem.Id, ["answer"] = problem.Answer };
            sft.Add(new SftExample(problem.Prompt, revision, fields));
            pairs.Add(new PreferenceExample(problem.Prompt, revision, sample) { Fields = fields });
        }
        return new OpaDpoDataResult(sft, pairs, correct, bad);
    }

    /// <summary>Writes <c>sft.jsonl</c> ({prompt, completion, ...fields}) and <c>pairs.jsonl</c> ({prompt, chosen, rejected, ...fields}) into <paramref name="dir"/>.</summary>
    public static void Write(OpaDpoDataResult data, string dir)
    {
        Directory.CreateDirectory(dir);
        DatasetWriter.WriteSft(Path.Combine(dir, "sft.jsonl"), data.Sft);
        var lines = data.Pairs.Select(p =>
        {
            var o = new JsonObject { ["prompt"] = p.Prompt, ["chosen"] = p.Chosen, ["rejected"] = p.Rejected };
            foreach (var (k, v) in p.Fields) if (k is not ("prompt" or "chosen" or "rejected")) o[k] = v;
            return o.ToJsonString();
        });
        Checkpoints.AtomicFile.WriteAllText(Path.Combine(dir, "pairs.jsonl"), string.Concat(lines.Select(l => l + "\n")));
    }
}
