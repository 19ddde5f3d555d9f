using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Serving;

namespace Sharpen.Cli.Commands;

/// <summary>A recipe's <c>judge</c> section as a <see cref="ChatJudge"/> over the official OpenAI client's <see cref="IChatClient"/>.</summary>
public static class JudgeClient
{
    /// <summary>The judge <paramref name="spec"/> describes, sampling at <paramref name="temperature"/>; the API key comes from its
    /// <c>api_key_env</c> variable (or a placeholder).</summary>
    public static ChatJudge Create(JudgeSpec spec, double temperature = 0)
    {
        var key = spec.ApiKeyEnv is { } env
            ? Environment.GetEnvironmentVariable(env) ?? throw new ArgumentException($"judge.api_key_env: the environment variable {env} is not set")
            : "unused";
        IChatClient client = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(spec.Url) })
            .GetChatClient(spec.Model).AsIChatClient();
        return new ChatJudge(client, new ChatJudgeOptions
        {
            SwapOrder = spec.SwapOrder, SelfReference = spec.SelfReference, Critique = spec.Critique, Principle = spec.Principle ?? JudgeProtocol.DefaultPrinciple,
            Chat = new ChatOptions { Temperature = (float)temperature, MaxOutputTokens = spec.MaxTokens },
        }, name: "judge");
    }
}
