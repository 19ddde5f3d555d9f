using Sharpen.Models;
using Sharpen.Tests.Models;
using static TorchSharp.torch;

namespace Sharpen.Tests.Generation;

/// <summary>
/// <see cref="DecodeSession.Fork"/> and <see cref="DecodeSession.Regroup"/> (continuous batching): sequences that join a
/// running session, leave it, or outgrow its slots get the logits each gets decoded alone.
/// </summary>
public class DecodeSessionRegroupTests
{
    static readonly long[][] Prompts = [[1, 5, 6, 7, 8, 9], [1, 4], [1, 10, 11, 3]];

    // Greedy decoding of one prompt alone: the logits before each of `steps` tokens.
    static float[][] Alone(CausalLM model, long[] prompt, int steps)
    {
        using var scope = NewDisposeScope();
        using var s = model.StartDecoding(1, prompt.Length + steps);
        var logits = s.Prefill(tensor(prompt).view(1, -1), ones(1, prompt.Length, dtype: ScalarType.Int64));
        var result = new List<float[]>();
        for (int t = 0; t < steps; t++)
        {
            result.Add(logits.data<float>().ToArray());
            if (t < steps - 1) logits = s.Step(logits.argmax(-1).view(1, 1));
        }
        return [.. result];
    }

    static (Tensor Ids, Tensor Mask) LeftPadded(IEnumerable<long[]> prompts)
    {
        var list = prompts.ToList();
        int w = list.Max(p => p.Length);
        var ids = list.SelectMany(p => Enumerable.Repeat(0L, w - p.Length).Concat(p)).ToArray();
        var mask = list.SelectMany(p => Enumerable.Repeat(0L, w - p.Length).Concat(Enumerable.Repeat(1L, p.Length))).ToArray();
        return (tensor(ids).view(list.Count, w), tensor(mask).view(list.Count, w));
    }

    [Theory]
    [InlineData("llama", false, 2)]
    [InlineData("qwen2", true, 1)]
    [InlineData("gemma", true, 1)]      // a fork must carry the embedding scale and (1 + w) norms too
    public void Joining_leaving_and_growing_rows_get_the_logits_they_get_alone(string type, bool tied, int kvHeads)
    {
        using var model = new CausalLM(CausalLMTests.Tiny(type, tied, kvHeads) with { InitializerRange = 0.5 }, seed: 3);
        const int steps = 12;
        var alone = Prompts.Select(p => Alone(model, p, steps)).ToArray();

        using var scope = NewDisposeScope();
        // Sequence 0 runs alone for 3 tokens in a session with room for only 2 steps; then 1 and 2 join (shorter prompts:
        // left padding); sequence 1 leaves after its 5th token; the session runs out of room and regroups twice more.
        using var session = model.StartDecoding(1, Prompts[0].Length + 2);
        var rows = new List<int> { 0 };
        var done = new int[3];                                   // tokens decoded per sequence
        var (i0, m0) = LeftPadded([Prompts[0]]);
        var logits = session.Prefill(i0, m0);
        double worst = 0;
        for (int step = 0; step < 30 && rows.Count > 0; step++)
        {
            if (step == 3)
            {
                // 1 and 2 join: prefilled in a fork, laid out after 0; their first logits come from their prefill.
                var (ids, mask) = LeftPadded([Prompts[1], Prompts[2]]);
                using var fork = session.Fork(2, ids.shape[1]);
                var joined = fork.Prefill(ids, mask);
                session.Regroup([0], fork, room: 3);
                logits = cat([logits, joined], 0);
                rows = [0, 1, 2];
            }
            var l = logits.data<float>().ToArray();
            int v = (int)logits.shape[1];
            for (int r = 0; r < rows.Count; r++)
            {
                var expected = alone[rows[r]][done[rows[r]]];
                for (int j = 0; j < v; j++) worst = Math.Max(worst, Math.Abs(expected[j] - l[r * v + j]));
                done[rows[r]]++;
            }
            var next = logits.argmax(-1);                         // (B)
            var keep = Enumerable.Range(0, rows.Count).Where(r => done[rows[r]] < (rows[r] == 1 ? 5 : steps)).ToList();
            if (keep.Count == 0) break;
            if (keep.Count < rows.Count || session.Filled + 1 > session.Capacity)
            {
                session.Regroup(keep.Select(r => (long)r).ToList(), null, room: 2);
                next = next.index_select(0, tensor(keep.Select(r => (long)r).ToArray()));
                rows = keep.Select(r => rows[r]).ToList();
            }
            logits = session.Step(next.view(-1, 1));
        }
        Assert.Equal([steps, 5, steps], done);
        Assert.True(worst < 1e-4, $"logits differ from decoding alone by {worst}");
    }

    [Fact]
    public void Regroup_refuses_a_session_with_a_kv_budget_and_a_joiner_that_is_not_a_prefilled_fork()
    {
        using var model = new CausalLM(CausalLMTests.Tiny(), seed: 1);
        using var budgeted = model.StartDecoding(1, 16, new KvBudget(4, 2));
        Assert.Throws<InvalidOperationException>(() => budgeted.Fork(1, 4));
        using var session = model.StartDecoding(1, 16);
        session.Prefill(tensor(new long[] { 1, 4 }).view(1, 2), ones(1, 2, dtype: ScalarType.Int64));
        using var fork = session.Fork(1, 4);
        Assert.Throws<ArgumentException>(() => session.Regroup([0], fork, 2));   // not prefilled
    }
}
