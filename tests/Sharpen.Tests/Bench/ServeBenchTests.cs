using Sharpen.Bench;

namespace Sharpen.Tests.Bench;

public class ServeBenchTests
{
    [Fact]
    public void Quick_serve_bench_counts_every_token_and_writes_a_row_per_client_level()
    {
        var result = ServeBench.Run(_ => { }, quick: true);
        var rows = result["rows"]!.AsArray();
        Assert.Equal([1, 4], rows.Select(r => r!["clients"]!.GetValue<int>()));
        foreach (var r in rows)
        {
            // Every request asks for 64 tokens with EOS ignored, and each client sends 2.
            Assert.Equal(2 * r!["clients"]!.GetValue<int>(), r["requests"]!.GetValue<int>());
            Assert.Equal(64L * r["requests"]!.GetValue<int>(), r["tokens"]!.GetValue<long>());
            Assert.True(r["p99_latency_s"]!.GetValue<double>() >= r["p50_latency_s"]!.GetValue<double>());
        }
        Assert.Contains("| 4 | 8 |", ServeBench.Table(result));
    }

    [Fact]
    public void An_unknown_model_is_refused_naming_the_option_and_the_choices()
    {
        var e = Assert.Throws<ArgumentException>(() => ServeBench.Run(_ => { }, model: "gpt-5"));
        Assert.Contains("--model", e.Message);
        Assert.Contains("'gpt-5'", e.Message);
        Assert.Contains("llama-26m, 3m", e.Message);
    }
}
