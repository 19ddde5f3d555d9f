using Sharpen.Training;
using Sharpen.Data;

namespace Sharpen.Tests.Training;

/// <summary>A power loss mid-append leaves half a row at the end of metrics.jsonl; it must not block a resume.</summary>
public class RunLogTornLineTests
{
    [Fact]
    public void A_torn_last_line_is_dropped_with_a_warning_everywhere_it_is_read()
    {
        using var dir = new TempDir();
        var log = new RunLog(dir.Path, append: true);
        File.WriteAllText(log.MetricsPath, "{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"loss\": 1}\n{\"step\": 3, \"lo");
        var warnings = new List<string>();
        Assert.Equal([1, 2], log.ReadMetrics(warnings.Add).Select(r => r["step"]!.GetValue<int>()));
        Assert.Single(warnings);
        Assert.Contains("metrics.jsonl:3: dropped a torn last line", warnings[0]);

        log.TruncateAfter(1);
        Assert.Equal("{\"step\": 1, \"loss\": 2}\n", File.ReadAllText(log.MetricsPath));
    }

    [Fact]
    public void Repair_rewrites_the_file_so_the_next_append_starts_a_fresh_line()
    {
        using var dir = new TempDir();
        var log = new RunLog(dir.Path, append: true);
        File.WriteAllText(log.MetricsPath, "{\"step\": 1}\n{\"st");
        Assert.True(log.RepairTornLine());
        log.Metrics(new System.Text.Json.Nodes.JsonObject { ["step"] = 2 });
        Assert.Equal("{\"step\": 1}\n{\"step\":2}\n", File.ReadAllText(log.MetricsPath));
        Assert.False(log.RepairTornLine());
    }

    [Fact]
    public void Damage_before_the_last_line_is_an_error_naming_the_line()
    {
        using var dir = new TempDir();
        var log = new RunLog(dir.Path, append: true);
        File.WriteAllText(log.MetricsPath, "{\"step\": 1}\ngarbage\n{\"step\": 3}\n");
        var e = Assert.Throws<InvalidDataException>(() => log.ReadMetrics());
        Assert.Contains("metrics.jsonl:2:", e.Message);
    }
}
