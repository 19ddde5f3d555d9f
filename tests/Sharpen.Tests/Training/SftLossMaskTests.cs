using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.Sft;
using static TorchSharp.torch;

namespace Sharpen.Tests.Training;

/// <summary>
/// Which tokens SFT trains on: TRL's assistant_only_loss (every assistant turn), the whole text, the last turn (Sharpen's
/// default), completion_only_loss and {"text"} rows. The token positions are worked out by hand for a character tokenizer
/// (one token per character, BOS first) under the real Qwen2.5 chat template; the loss is checked against an independent
/// forward pass over those positions.
/// </summary>
public sealed class SftLossMaskTests
{
    // Every character the Qwen2.5 template prints for the conversation below.
    static readonly CharTokenizer Tok = CharTokenizer.Create("\n ,.<>?ACHQYabcdefhilmnoprstuwy|_0123456789+=");

    static CausalLM Model() => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 256 }, 7);

    static SftExample Conversation(TempDir dir)
    {
        var file = dir.File("chat.jsonl");
        File.WriteAllText(file, """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}""" + "\n");
        var template = File.ReadAllText(RepoPaths.Of("tests", "Sharpen.Tests", "Tokenizers", "ChatTemplates", "qwen2.5.jinja"));
        return Assert.Single(JsonlDataset.LoadSft(file, chat: ChatFormat.FromTemplate(HfChatTemplate.Create(template))).Items);
    }

    // The rendered text, piece by piece (lengths counted by hand):
    //   "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"  98 chars   [0, 98)
    //   "<|im_start|>user\nHi<|im_end|>\n"                                                                     30         [98, 128)
    //   "<|im_start|>assistant\n"                                                                              22         [128, 150)
    //   "Yo<|im_end|>\n"                                      assistant turn 1                                 13         [150, 163)
    //   "<|im_start|>user\nQ?<|im_end|>\n"                                                                     30         [163, 193)
    //   "<|im_start|>assistant\n"                                                                              22         [193, 215)
    //   "A.<|im_end|>\n"                                      assistant turn 2                                 13         [215, 228)
    // Tokens: BOS at 0, character i at i + 1, EOS at 229 (230 in all).
    static readonly int[] EveryAssistantTurn = [.. Enumerable.Range(151, 13), .. Enumerable.Range(216, 13), 229];
    static readonly int[] LastTurn = [.. Enumerable.Range(216, 13), 229];
    static readonly int[] WholeText = [.. Enumerable.Range(1, 229)];

    /// <summary>−mean log p(token t | tokens before t) over <paramref name="positions"/>, from one forward pass of the full sequence.</summary>
    static double ReferenceLoss(CausalLM model, IReadOnlyList<int> ids, IReadOnlyList<int> positions)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray()).view(1, -1)).Logits;   // (1, T, V)
        var logp = logits.log_softmax(-1)[0];
        double sum = 0;
        foreach (var t in positions) sum += logp[t - 1, ids[t]].item<float>();
        return -sum / positions.Count;
    }

    [Fact]
    public void Assistant_only_loss_trains_every_assistant_turn_at_hand_counted_positions()
    {
        using var dir = new TempDir();
        var e = Conversation(dir);
        var whole = e.Prompt + e.Completion;
        Assert.Equal(228, whole.Length);
        Assert.Equal([(150, 163), (215, 228)], e.AssistantSpans);

        var ids = new List<int> { Tok.BosTokenId!.Value };
        ids.AddRange(Tok.Encode(whole, addSpecialTokens: false));
        ids.Add(Tok.EosTokenId!.Value);
        Assert.Equal(230, ids.Count);
        Assert.DoesNotContain(Tok.Encode(whole), id => id == 3);   // no <unk>: the alphabet covers the text

        foreach (var (options, positions) in new (SftOptions, int[])[]
                 {
                     (new SftOptions { AssistantOnlyLoss = true }, EveryAssistantTurn),
                     (new SftOptions { AssistantOnlyLoss = false }, WholeText),
                     (new SftOptions(), LastTurn),
                     (new SftOptions { CompletionOnlyLoss = false }, WholeText),
                 })
        {
            var (tokens, trained, _) = SftTrainer.Tokens(Tok, Tok.EosTokenId!.Value, e.Prompt, e.Completion, SftTrainer.TrainedSpans(e, options));
            Assert.Equal(ids, tokens);
            Assert.Equal(positions, Enumerable.Range(0, trained.Length).Where(i => trained[i]));

            using var model = Model();
            var trainer = new SftTrainer(model, Tok, options with { BatchSize = 1, MaxSequenceLength = 256 });
            model.zero_grad();
            var (loss, count) = trainer.Backward([e]);
            Assert.Equal(positions.Length, count);
            Assert.Equal(ReferenceLoss(model, ids, positions), loss, 4);
        }
    }

    [Fact]
    public void Text_rows_train_everything_and_completion_only_loss_false_trains_the_prompt()
    {
        using var dir = new TempDir();
        var file = dir.File("rows.jsonl");
        File.WriteAllText(file, "{\"text\": \"12+3=15\"}\n{\"prompt\": \"1+2=\", \"completion\": \"3\"}\n");
        var rows = JsonlDataset.LoadSft(file).Items;
        using var model = Model();
        int eos = Tok.EosTokenId!.Value;
        // "12+3=15": BOS + 7 characters + EOS; all but BOS trained.
        var (_, trained, _) = SftTrainer.Tokens(Tok, eos, rows[0].Prompt, rows[0].Completion, SftTrainer.TrainedSpans(rows[0], new SftOptions()));
        Assert.Equal([false, true, true, true, true, true, true, true, true], trained);
        Assert.Equal(8, new SftTrainer(model, Tok, new SftOptions { BatchSize = 1 }).Backward([rows[0]]).Tokens);
        // "1+2=" then "3": by default "3" and EOS (2 tokens); with completion_only_loss false, "1+2=3" and EOS (6).
        Assert.Equal(2, new SftTrainer(model, Tok, new SftOptions { BatchSize = 1 }).Backward([rows[1]]).Tokens);
        Assert.Equal(6, new SftTrainer(model, Tok, new SftOptions { BatchSize = 1, CompletionOnlyLoss = false }).Backward([rows[1]]).Tokens);
        // assistant_only_loss on a text row: it has no assistant turns.
        var error = Assert.Throws<ArgumentException>(() => new SftTrainer(model, Tok, new SftOptions { AssistantOnlyLoss = true }).Backward([rows[0]]));
        Assert.Contains("assistant_only_loss", error.Message);
    }
}
