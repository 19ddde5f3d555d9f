using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Environments;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Data;

namespace Sharpen.Tests.Environments;

/// <summary>
/// <c>sharpen eval --env dsp</c> with a frozen model: the environment's section comes from a recipe file
/// (<c>--env-config</c>) or from <c>--frozen-checkpoint</c>; the frozen model is a tiny real checkpoint loaded in process.
/// Every episode is re-played here by hand: the frozen checkpoint, loaded separately, is asked the hint and the task's
/// prompt, its greedy answer must be what the environment recorded, and the task's verifier on that answer must be the
/// episode's return.
/// </summary>
public class EvalEnvFrozenModelTests
{
    // Printable ASCII and a newline: covers the Countdown prompts, the policy's hints and the "Hint: " template.
    static readonly CharTokenizer Tok = CharTokenizer.Create("\n" + new string(Enumerable.Range(32, 95).Select(c => (char)c).ToArray()));

    static CountdownOptions TaskOptions => new() { MinNumbers = 3, MaxNumbers = 3, MaxNumber = 40, MaxTarget = 100 };

    static void SaveTiny(string dir, int seed)
    {
        using var model = new CausalLM(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 160 }, seed);
        HfCheckpoint.Save(dir, model, Tok);
    }

    [Fact]
    public void Eval_env_dsp_from_a_recipe_file_replays_by_hand_and_counts_the_frozen_calls()
    {
        using var dir = new TempDir();
        SaveTiny(dir.File("policy"), 5);
        SaveTiny(dir.File("frozen"), 9);
        File.WriteAllText(dir.File("dsp.yaml"), $"""
            kind: rl
            output: runs/ignored
            env:
              name: dsp
              task: {"{"} name: countdown, min_numbers: 3, max_numbers: 3, max_number: 40, max_target: 100 {"}"}
              frozen: {"{"} checkpoint: {dir.File("frozen")}, template: raw, max_new_tokens: 8, temperature: 0 {"}"}
              template: "Hint: {"{hint}"}\n{"{prompt}"}"
              token_budget: 96
            rl: {"{"} algorithm: ppo {"}"}
            """);
        const int n = 6, seed = 3;
        var summary = EvalRun.Run(new EvalSettings
        {
            Model = dir.File("policy"), Out = dir.File("eval"), EnvConfig = dir.File("dsp.yaml"), N = n, MaxNewTokens = 6, Seed = seed,
        }).Summary;

        var transcripts = TrajectoryJsonl.Read(dir.File("eval/transcripts.jsonl"));
        Assert.Equal(n, transcripts.Count);
        var task = TaskRegistry.Create("countdown", TaskOptions);
        var problems = Enumerable.Range(seed, n).Select(s => task.Generate(1, s)[0]).ToArray();
        var hints = transcripts.Select(t => Assert.Single(t.Messages, m => m.Role == "assistant").Content.Trim()).ToArray();
        var asked = problems.Select((p, i) => $"Hint: {hints[i]}\n{p.Prompt}").ToArray();
        Assert.Equal(problems.Select(p => p.Prompt), transcripts.Select(t => t.Messages[0].Content));   // the task's prompt is the observation

        // The frozen model by hand: the same checkpoint, greedy, 8 tokens, cut at the first newline.
        var loaded = HfCheckpoint.Load(dir.File("frozen"), requireTokenizer: true);
        using var frozen = loaded.Model;
        frozen.eval();
        var ids = asked.Select(a => (IReadOnlyList<int>)Tok.Encode(a, addSpecialTokens: true).ToArray()).ToList();
        var answers = new RolloutEngine(frozen, Tok).Generate(ids, new SamplingOptions { Temperature = 0, MaxNewTokens = 8, StopStrings = ["\n"] });
        var texts = answers.Select(r => r.CompletionText.Split('\n')[0]).ToArray();
        Assert.Equal(texts, transcripts.Select(t => t.FinalInfo["frozen_answer"]));
        var verdicts = problems.Select((p, i) => task.Verify(p, texts[i])).ToArray();
        Assert.Equal(verdicts.Select(v => v.Reward), transcripts.Select(t => t.Return));
        Assert.Equal(verdicts.Count(v => v.Correct) / (double)n, summary["success_rate"]!.GetValue<double>(), 12);
        Assert.Equal(verdicts.Average(v => v.Reward), summary["mean_return"]!.GetValue<double>(), 12);
        Assert.Equal(1.0, summary["mean_turns"]!.GetValue<double>());   // dsp: one policy turn

        // One lock-step batch of six episodes = one batched frozen call of six requests; tokens = prompt (with BOS) + generated.
        var counts = summary["frozen"]!.AsObject();
        Assert.Equal(1.0, counts["calls"]!.GetValue<double>());
        Assert.Equal(n, counts["requests"]!.GetValue<double>());
        Assert.Equal(ids.Sum(x => x.Count) + answers.Sum(r => r.CompletionIds.Length), counts["tokens"]!.GetValue<double>());
        var rows = new RunLog(dir.File("eval"), append: true).ReadMetrics();
        Assert.Equal(Enumerable.Range(seed, n), rows.Select(r => r["seed"]!.GetValue<int>()));
        Assert.Equal(verdicts.Select(v => v.Reward), rows.Select(r => r["return"]!.GetValue<double>()));
        Assert.Equal(rows.Average(r => r["turn_tokens"]![0]!.GetValue<double>()), summary["turn_tokens"]![0]!.GetValue<double>(), 3);
    }

    [Fact]
    public void Eval_env_dsp_takes_the_frozen_checkpoint_from_the_command_line_and_says_what_is_missing()
    {
        using var dir = new TempDir();
        SaveTiny(dir.File("policy"), 5);
        SaveTiny(dir.File("frozen"), 9);
        var withFlag = EvalRun.Run(new EvalSettings
        {
            Model = dir.File("policy"), Out = dir.File("eval"), Env = "dsp", N = 3, MaxNewTokens = 4, TokenBudget = 96,
            Frozen = new FrozenModelSpec { Checkpoint = dir.File("frozen"), MaxNewTokens = 4 },
        }).Summary;
        Assert.Equal(3, withFlag["frozen"]!["requests"]!.GetValue<double>());
        Assert.Equal(dir.File("frozen"), withFlag["frozen"]!["model"]!.GetValue<string>());
        Assert.Equal(96, withFlag["token_budget"]!.GetValue<int>());

        var missing = Assert.Throws<ArgumentException>(() => EvalRun.Run(new EvalSettings { Model = dir.File("policy"), Out = dir.File("e2"), Env = "dsp", N = 1 }));
        Assert.Contains("--frozen-checkpoint", missing.Message);
        var wrongEnv = Assert.Throws<ArgumentException>(() => EvalRun.Run(new EvalSettings
            { Model = dir.File("policy"), Out = dir.File("e3"), Env = "guess-number", N = 1, Frozen = new FrozenModelSpec { Checkpoint = dir.File("frozen") } }));
        Assert.Contains("'guess-number'", wrongEnv.Message);
        File.WriteAllText(dir.File("sft.yaml"), "kind: sft\noutput: runs/x\n");
        var noEnv = Assert.Throws<ArgumentException>(() => EvalRun.Run(new EvalSettings { Model = dir.File("policy"), Out = dir.File("e4"), EnvConfig = dir.File("sft.yaml"), N = 1 }));
        Assert.Contains("sft.yaml", noEnv.Message);
        Assert.Contains("no 'env:' block", noEnv.Message);
        // A bare env block (no recipe around it) whose name disagrees with --env.
        File.WriteAllText(dir.File("env.yaml"), $"name: daslam\nfrozen: {{ checkpoint: {dir.File("frozen")} }}\n");
        var clash = Assert.Throws<ArgumentException>(() => EvalRun.Run(new EvalSettings
            { Model = dir.File("policy"), Out = dir.File("e5"), Env = "dsp", EnvConfig = dir.File("env.yaml"), N = 1 }));
        Assert.Contains("'dsp'", clash.Message);
        Assert.Contains("'daslam'", clash.Message);
    }
}
