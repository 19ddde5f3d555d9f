using System.Text.Json.Nodes;
using Sharpen.Cli;
using Sharpen.Export;
using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Tests.Cli;
using Sharpen.Tests.Export;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Generation;

/// <summary>Choosing the rollout engine by name: the registry, a recipe's <c>rollout:</c> section and the CLI's <c>--engine</c>.</summary>
public class RolloutEnginesTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefghijk +=0123456789");

    static CausalLM Model() => LlamaCppOracle.Randomize(new CausalLM(new ModelConfig
    {
        ModelType = "llama", VocabSize = Tok.VocabSize, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2,
        NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 128, EosTokenIds = [CharTokenizer.EosId],
    }, 3), 103, scale: 0.15);

    static RolloutSpec Spec(string json) => RolloutSpec.Parse(JsonNode.Parse(json)!.AsObject());

    [Fact]
    public void Unknown_engines_and_keys_fail_naming_what_is_known()
    {
        LlamaCppEngines.Register();
        var e = Assert.Throws<ArgumentException>(() => Spec("""{"engine": "vllm"}"""));
        Assert.Contains("unknown rollout engine 'vllm'; known: llamacpp, openai, torch", e.Message);
        var k = Assert.Throws<ArgumentException>(() => Spec("""{"engine": "llamacpp", "base_url": "http://x/v1"}"""));
        Assert.Contains("unknown key 'rollout.base_url' for engine 'llamacpp'", k.Message);
        Assert.Contains("threads", k.Message);
        Assert.Contains("rollout.tis_cap must be a finite number ≥ 1", Assert.Throws<ArgumentException>(() => Spec("""{"tis_cap": 0.5}""")).Message);
        Assert.Contains("rollout.tis must be true or false", Assert.Throws<ArgumentException>(() => Spec("""{"tis": "yes"}""")).Message);
        using var model = Model();
        Assert.Contains("rollout.dtype must be f32, f16 or q8_0", Assert.Throws<ArgumentException>(() =>
            RolloutEngines.Create(Spec("""{"engine": "llamacpp", "dtype": "bf16"}"""), model, Tok)).Message);
        Assert.Contains("rollout.base_url is required", Assert.Throws<ArgumentException>(() =>
            RolloutEngines.Create(Spec("""{"engine": "openai", "model": "m"}"""), model, Tok)).Message);
        Assert.Contains("rollout.threads must be an integer", Assert.Throws<ArgumentException>(() =>
            RolloutEngines.Create(Spec("""{"engine": "llamacpp", "threads": 1.5}"""), model, Tok)).Message);
    }

    [Fact]
    public void Each_engine_is_built_from_its_options_and_tis_defaults_follow_the_engine()
    {
        LlamaCppEngines.Register();
        using var model = Model();
        var torch = Spec("{}");
        Assert.Equal("torch", torch.Engine);
        Assert.False(torch.TisEnabled);
        Assert.IsType<RolloutEngine>(RolloutEngines.Create(torch, model, Tok));

        var llama = Spec("""{"engine": "llamacpp", "threads": 2, "dtype": "f16", "context": 512}""");
        Assert.True(llama.TisEnabled);
        Assert.Equal(2.0, llama.TisCap);
        Assert.False(Spec("""{"engine": "llamacpp", "tis": false}""").TisEnabled);
        var options = LlamaCppEngines.Options(new RolloutEngineOptions(llama.Options));
        Assert.Equal((2, GgufDType.F16, 512), (options.Threads, options.DType, options.ContextSize));
        using (var engine = (LlamaCppEngine)RolloutEngines.Create(llama, model, Tok))
        {
            Assert.False(((IRolloutEngine)engine).SamplesTrainerPolicy);
            Assert.True(File.Exists(engine.ModelPath));
        }

        var openai = Spec("""{"engine": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "policy", "reload_endpoint": null, "timeout": 5}""");
        using (var engine = (OpenAiEngine)RolloutEngines.Create(openai, model, Tok))
            Assert.False(((IRolloutEngine)engine).SamplesTrainerPolicy);
    }

    [Fact]
    public void The_torch_engines_kv_budget_option_applies_h2o_to_every_request()
    {
        using var model = Model();
        var engine = RolloutEngines.Create(Spec("""{"kv_budget": 6, "kv_recent": 3}"""), model, Tok);
        Assert.True(engine.SamplesTrainerPolicy);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 20, StopAtEos = false };
        string[] prompts = ["badge jab 12+3=", "hello"];
        var viaOption = engine.Generate(prompts, o);
        var direct = new RolloutEngine(model, Tok).Generate(prompts, o with { KvBudget = 6, KvRecent = 3 });
        var full = new RolloutEngine(model, Tok).Generate(prompts, o);
        Assert.Equal(direct.Select(r => r.CompletionIds), viaOption.Select(r => r.CompletionIds));
        Assert.Equal(direct.SelectMany(r => r.LogProbs), viaOption.SelectMany(r => r.LogProbs));
        // Eviction changed something: the full-cache engine's log-probs differ once the cache outgrows the budget.
        Assert.NotEqual(full.SelectMany(r => r.LogProbs), viaOption.SelectMany(r => r.LogProbs));
    }

    [Fact]
    public void A_recipe_rollout_section_is_read_and_checked()
    {
        const string head = "kind: rl\nmodel: { path: m }\ntask: { name: countdown }\n";
        LlamaCppEngines.Register();
        var spec = Recipe.Parse(head + "rollout: { engine: llamacpp, threads: 2, dtype: f16, tis_cap: 3 }\n").Rollout();
        Assert.Equal(("llamacpp", 3.0, true), (spec.Engine, spec.TisCap, spec.TisEnabled));
        Assert.Equal(2, new RolloutEngineOptions(spec.Options).Int("threads"));
        Assert.Equal("torch", Recipe.Parse(head).Rollout().Engine);
        Assert.Contains("unknown key 'rollout.thread'; did you mean 'threads'?",
            Assert.Throws<RecipeException>(() => Recipe.Parse(head + "rollout: { engine: llamacpp, thread: 2 }\n", "r.yaml")).Message);
        Assert.Contains("r.yaml: 'rollout.engine': unknown rollout engine 'sglang'",
            Assert.Throws<RecipeException>(() => Recipe.Parse(head + "rollout: { engine: sglang }\n", "r.yaml")).Message);
        Assert.Contains("'rollout' works with kind rl, online_dpo, dno, spin",
            Assert.Throws<RecipeException>(() => Recipe.Parse("kind: sft\nmodel: { path: m }\ntask: { name: countdown }\nrollout: { engine: torch }\n", "r.yaml")).Message);
        Assert.Equal("openai", Recipe.Parse("kind: online_dpo\nmodel: { path: m }\ntask: { name: countdown }\nrollout: { engine: openai, base_url: 'http://h:1/v1', model: p }\n").Rollout().Engine);
    }

    [Fact]
    public void Generate_with_engine_llamacpp_prints_the_torch_engines_greedy_completions()
    {
        using var dir = new TempDir();
        using (var model = Model()) Sharpen.Checkpoints.HfCheckpoint.Save(dir.File("m"), model, Tok);
        string[] common = ["generate", "--model", dir.File("m"), "--prompt", "badge jab 12+3=", "--max-new-tokens", "12", "--temperature", "0", "--samples", "2"];
        var torch = CliHarness.Root(common);
        var llama = CliHarness.Root([.. common, "--engine", "llamacpp", "--engine-option", "threads=2"]);
        Assert.True(torch.Code == 0, torch.Err);
        Assert.True(llama.Code == 0, llama.Err);
        Assert.Equal(torch.Out, llama.Out);
        Assert.Equal(2, llama.Out.Split('\n').Count(l => l.StartsWith("--- sample ")));
        var bad = CliHarness.Root([.. common, "--engine", "vllm"]);
        Assert.Equal(1, bad.Code);
        Assert.Contains("unknown rollout engine 'vllm'; known: llamacpp, openai, torch", bad.Err);
    }
}
