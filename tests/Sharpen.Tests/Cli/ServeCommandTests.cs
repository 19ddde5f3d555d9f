using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Sharpen.Cli.Commands;
using Sharpen.Tests.Serving;

namespace Sharpen.Tests.Cli;

public class ServeCommandTests
{
    [Fact]
    public async Task Serve_answers_on_the_port_it_prints_and_stops_cleanly_when_cancelled()
    {
        using var dir = new TempDir();
        ServingFixture.WriteCheckpoint(dir.File("model"), seed: 5);
        var (oldOut, w) = (Console.Out, new StringWriter());
        Console.SetOut(TextWriter.Synchronized(w));
        using var stop = new CancellationTokenSource();
        try
        {
            var run = ServeCommand.Create().Parse(["--model", dir.File("model"), "--port", "0", "--max-batch", "4", "--model-name", "m"]).InvokeAsync(null, stop.Token);
            Match url = Match.Empty;
            for (int i = 0; i < 600 && !(url = Regex.Match(w.ToString(), @"at (http://127\.0\.0\.1:\d+/)v1")).Success; i++) await Task.Delay(100);
            Assert.True(url.Success, w.ToString());
            using var http = new HttpClient { BaseAddress = new Uri(url.Groups[1].Value) };
            Assert.Equal("ok", JsonNode.Parse(await http.GetStringAsync("health"))!["status"]!.GetValue<string>());
            var body = new StringContent("""{"model": "m", "prompt": "ab", "max_tokens": 3, "ignore_eos": true}""", System.Text.Encoding.UTF8, "application/json");
            var reply = JsonNode.Parse(await (await http.PostAsync("v1/completions", body)).Content.ReadAsStringAsync())!;
            Assert.Equal(3, reply["usage"]!["completion_tokens"]!.GetValue<int>());
            stop.Cancel();   // what Ctrl-C does
            Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("stopping: finishing requests in flight", w.ToString());
        }
        finally { Console.SetOut(oldOut); }
    }
}
