// tb_unpack: nuq_unpack against a bit-by-bit reference on random words, every index width
// 1..8 and every lane; then, with +mem=DIR (a `nuq export --word-bits 64` directory), every
// word of seq_weights.mem is unpacked at the layer's index width and packed again: the
// lanes must rebuild the word exactly (lane 0 low, unused high bits zero, FORMAT.md §6.3).
`timescale 1ns/1ps
module tb_unpack;
    localparam W = 64;
    reg  [W-1:0] word;
    reg  [3:0]   bits;
    reg  [8:0]   lane;
    wire [7:0]   index;
    nuq_unpack #(.W(W)) dut (.word(word), .bits(bits), .lane(lane), .index(index));

    integer errors, checks, seed, b, j, i, l, n, li, nl, op, wb, base, wpr, rows, fd;
    reg [7:0] expect_v;
    reg [W-1:0] rebuilt;
    reg [8*1024-1:0] memdir, fname;
    reg [31:0] desc [0:4095];
    reg [W-1:0] words [0:65535];
    initial begin
        errors = 0; checks = 0; seed = 11;
        for (i = 0; i < 200; i = i + 1) begin
            word = {$random(seed), $random(seed)};
            for (b = 1; b <= 8; b = b + 1)
                for (j = 0; j < W / b; j = j + 1) begin
                    bits = b; lane = j;
                    #1;
                    expect_v = 0;
                    for (l = 0; l < b; l = l + 1) expect_v[l] = word[j * b + l];
                    checks = checks + 1;
                    if (index !== expect_v) begin
                        errors = errors + 1;
                        if (errors < 5) $display("FAIL word=%h bits=%0d lane=%0d got=%h expected=%h", word, b, j, index, expect_v);
                    end
                end
        end
        if ($value$plusargs("mem=%s", memdir)) begin
            $sformat(fname, "%0s/seq_layers.mem", memdir);
            $readmemh(fname, desc);
            $sformat(fname, "%0s/seq_weights.mem", memdir);
            $readmemh(fname, words);
            nl = desc[2];
            n = 0;
            for (li = 0; li < nl; li = li + 1) begin
                op = desc[32 * (li + 1)];
                if (op == 2 || op == 3) begin
                    wb = desc[32 * (li + 1) + 1];
                    base = desc[32 * (li + 1) + 21];
                    wpr = desc[32 * (li + 1) + 22];
                    rows = desc[32 * (li + 1) + 12];
                    for (i = base; i < base + wpr * rows; i = i + 1) begin
                        word = words[i];
                        bits = wb;
                        rebuilt = 0;
                        for (j = 0; j < W / wb; j = j + 1) begin
                            lane = j;
                            #1;
                            rebuilt = rebuilt | ({{(W-8){1'b0}}, index} << (j * wb));
                        end
                        checks = checks + 1;
                        n = n + 1;
                        if (rebuilt !== word) begin
                            errors = errors + 1;
                            if (errors < 5) $display("FAIL layer %0d word %0d: lanes rebuild %h, image holds %h", li, i, rebuilt, word);
                        end
                    end
                end
            end
            if (n == 0) begin
                errors = errors + 1;
                $display("FAIL +mem given but no weight words found in %0s", memdir);
            end
        end
        if (errors == 0) $display("PASS tb_unpack checks=%0d", checks);
        else $display("FAIL tb_unpack errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
