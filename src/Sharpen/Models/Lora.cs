using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>
/// LoRA (Hu et al. 2021): each adapted projection W (out × in) computes W·x + (alpha / r)·B·A·dropout(x), with A (r × in)
/// initialised like a linear layer (Kaiming-uniform, a = √5) and B (out × r) at zero, so training starts from the base
/// model's function and only A and B learn. Keys are those of Hugging Face PEFT's <c>LoraConfig</c>; recipes write them
/// under <c>model.lora</c>.
/// </summary>
public sealed record LoraOptions
{
    /// <summary>The projections every decoder layer may adapt (Hugging Face names).</summary>
    public static IReadOnlyList<string> KnownModules { get; } = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>Rank r of A and B.</summary>
    public int R { get; init; } = 8;
    /// <summary>Scale numerator: the update is multiplied by alpha / r.</summary>
    public double Alpha { get; init; } = 16;
    /// <summary>Dropout on the adapter's input while training.</summary>
    public double Dropout { get; init; }
    /// <summary>Which projections get adapters (default: all seven of every layer).</summary>
    public List<string> TargetModules { get; init; } = [.. KnownModules];

    /// <summary>alpha / r.</summary>
    public double Scale => Alpha / R;

    /// <summary>Throws <see cref="ArgumentException"/> naming the key (snake_case) that is out of range.</summary>
    public LoraOptions Validate()
    {
        if (R <= 0) throw new ArgumentException($"lora.r must be positive, got {R}");
        if (!double.IsFinite(Alpha) || Alpha <= 0) throw new ArgumentException($"lora.alpha must be a positive number, got {Alpha}");
        if (!double.IsFinite(Dropout) || Dropout < 0 || Dropout >= 1) throw new ArgumentException($"lora.dropout must be in [0, 1), got {Dropout}");
        if (TargetModules is null || TargetModules.Count == 0) throw new ArgumentException("lora.target_modules must name at least one projection");
        foreach (var m in TargetModules)
            if (!KnownModules.Contains(m))
                throw new ArgumentException($"lora.target_modules: unknown projection '{m}'; known: {string.Join(", ", KnownModules)}");
        if (TargetModules.Distinct().Count() != TargetModules.Count) throw new ArgumentException("lora.target_modules lists a projection twice");
        return this;
    }

    /// <summary>PEFT's <c>adapter_config.json</c> for these options.</summary>
    public JsonObject ToPeftConfig(string? baseModel) => new()
    {
        ["peft_type"] = "LORA", ["task_type"] = "CAUSAL_LM", ["r"] = R, ["lora_alpha"] = Alpha, ["lora_dropout"] = Dropout,
        ["target_modules"] = new JsonArray(TargetModules.Select(m => (JsonNode?)m).ToArray()), ["bias"] = "none",
        ["fan_in_fan_out"] = false, ["inference_mode"] = true, ["base_model_name_or_path"] = baseModel,
    };

    /// <summary>Reads PEFT's <c>adapter_config.json</c> (LoRA only); <paramref name="source"/> names the file in errors.</summary>
    public static LoraOptions FromPeftConfig(JsonObject o, string source)
    {
        if (o["peft_type"]?.GetValue<string>() is { } t && t != "LORA") throw new InvalidDataException($"{source}: peft_type is '{t}', only LORA is supported");
        try
        {
            return new LoraOptions
            {
                R = o["r"]?.GetValue<int>() ?? throw new InvalidDataException($"{source}: missing 'r'"),
                Alpha = o["lora_alpha"]?.GetValue<double>() ?? throw new InvalidDataException($"{source}: missing 'lora_alpha'"),
                Dropout = o["lora_dropout"]?.GetValue<double>() ?? 0,
                TargetModules = o["target_modules"] is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToList() : throw new InvalidDataException($"{source}: 'target_modules' must be a list"),
            }.Validate();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }
}

/// <summary>Whether a model's adapters take part in its forward pass (shared by all adapters of one model).</summary>
sealed class LoraSwitch
{
    public bool Enabled { get; set; } = true;
}

/// <summary>The A and B of one adapted projection; registered on that projection as <c>lora_A</c> and <c>lora_B</c>.</summary>
sealed class LoraAdapter
{
    public LoraAdapter(Linear target, long inFeatures, long outFeatures, LoraOptions o, Generator gen, LoraSwitch on)
    {
        Switch = on;
        A = nn.Linear(inFeatures, o.R, hasBias: false);
        B = nn.Linear(o.R, outFeatures, hasBias: false);
        using (no_grad())
        {
            // Kaiming-uniform with a = √5 (a linear layer's default): bound = √(6 / ((1 + a²)·fan_in)) = 1/√fan_in.
            double bound = 1.0 / Math.Sqrt(inFeatures);
            A.weight!.uniform_(-bound, bound, gen);
            B.weight!.zero_();
        }
        Scale = o.Scale;
        Dropout = o.Dropout;
        Target = target;
        target.register_module("lora_A", A);
        target.register_module("lora_B", B);
    }

    public LoraSwitch Switch { get; }
    public Linear A { get; }
    public Linear B { get; }
    public Linear Target { get; }
    public double Scale { get; }
    public double Dropout { get; }

    /// <summary>(alpha / r)·B·A·dropout(x).</summary>
    public Tensor Delta(Tensor x)
    {
        var input = Dropout > 0 && Target.training ? nn.functional.dropout(x, Dropout, training: true) : x;
        return B.forward(A.forward(input)) * Scale;
    }

    /// <summary>The weight <paramref name="linear"/> computes with now: merged with its adapter while the adapter is on (a new
    /// tensor), else its own weight; and its bias. No gradients.</summary>
    internal static (Tensor Weight, Tensor? Bias) EffectiveWeight(Dictionary<string, LoraAdapter> adapters, string name, Linear linear) =>
        adapters.TryGetValue(name, out var a) && a.Switch.Enabled ? (a.Merged(), linear.bias?.detach()) : (linear.weight!.detach(), linear.bias?.detach());

    /// <summary>W + (alpha / r)·B·A, the projection's weight with the adapter merged in.</summary>
    public Tensor Merged()
    {
        using var _ = no_grad();
        return Target.weight! + matmul(B.weight!, A.weight!) * Scale;
    }
}
