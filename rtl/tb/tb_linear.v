// tb_linear: nuq_linear runs the classifier of a real model: +mem=DIR (`nuq export
// --word-bits 64`) gives its weights, codebook and bias, +vec=DIR (`nuq vectors`) its input
// levels and the expected i32 logits of every image. Without them it checks a small
// classifier with known weights (FORMAT.md §10's: levels -4, -1, 1, 4).
`timescale 1ns/1ps
module tb_linear;
    localparam P = 16, W = 64;
    reg clk = 0;
    always #5 clk = ~clk;
    reg rst, start;
    reg [31:0] n_in, n_out, wpr;
    reg [3:0] wbits;
    wire [P*32-1:0] act_addr, w_addr;
    reg  [P*8-1:0] act_data;
    reg  [P*W-1:0] w_data;
    wire [7:0] cb_addr;
    wire [31:0] bias_addr, out_data, out_index;
    wire out_valid, done;
    nuq_linear #(.P(P), .W(W)) dut (.clk(clk), .rst(rst), .start(start), .n_in(n_in), .n_out(n_out),
        .wbits(wbits), .wpr(wpr), .act_addr(act_addr), .act_data(act_data), .w_addr(w_addr),
        .w_data(w_data), .cb_addr(cb_addr), .cb_data(levels[cb_base + cb_addr]),
        .bias_addr(bias_addr), .bias_data(bias[bias_base + bias_addr]), .out_valid(out_valid),
        .out_index(out_index), .out_data(out_data), .done(done));

    reg [31:0] desc [0:4095];
    reg [W-1:0] words [0:65535];
    reg [7:0] levels [0:16383];
    reg [31:0] bias [0:8191];
    reg [7:0] feat [0:65535];          // features of one image, file order
    reg [32:0] vin [0:1048575];
    reg [32:0] vout [0:65535];
    reg [8*1024-1:0] memdir, vecdir, fname;
    integer errors, checks, li, nl, vi, op, cb_base, bias_base, w_base, img, images, j, p, fd;
    integer ic, ih, iw, c, y, x, cycles, got_n;
    // sensitive to the addresses only (the memories are loaded before the unit starts)
    always @(act_addr or w_addr or w_base) begin
        for (p = 0; p < P; p = p + 1) begin
            act_data[8*p +: 8] = feat[act_addr[32*p +: 32] % 65536];
            w_data[W*p +: W] = words[(w_base + w_addr[32*p +: 32]) % 65536];
        end
    end
    task run_image;     // runs the unit, checks every logit against vout[img*n_out + o]
        begin
            rst = 1; start = 0;
            @(posedge clk); #1 rst = 0;
            start = 1; @(posedge clk); #1 start = 0;
            cycles = 0; got_n = 0;
            while (!done && cycles < 1000000) begin
                @(posedge clk); #1 cycles = cycles + 1;
                if (out_valid) begin
                    checks = checks + 1; got_n = got_n + 1;
                    if (out_data !== vout[img * n_out + out_index][31:0]) begin
                        errors = errors + 1;
                        if (errors < 5) $display("FAIL image %0d logit %0d: got %0d expected %0d", img, out_index,
                            $signed(out_data), $signed(vout[img * n_out + out_index][31:0]));
                    end
                end
            end
            if (!done || got_n != n_out) begin
                errors = errors + 1;
                $display("FAIL image %0d: %0d logits in %0d cycles", img, got_n, cycles);
            end
        end
    endtask
    initial begin
        errors = 0; checks = 0;
        if ($value$plusargs("mem=%s", memdir) && $value$plusargs("vec=%s", vecdir)) begin
            if (!$value$plusargs("images=%d", images)) images = 1;
            $sformat(fname, "%0s/seq_layers.mem", memdir); $readmemh(fname, desc);
            $sformat(fname, "%0s/seq_weights.mem", memdir); $readmemh(fname, words);
            $sformat(fname, "%0s/seq_levels.mem", memdir); $readmemh(fname, levels);
            $sformat(fname, "%0s/seq_bias.mem", memdir); $readmemh(fname, bias);
            nl = desc[2]; vi = 0; li = -1;
            for (j = 1; j < nl; j = j + 1) begin
                op = desc[32 * (j + 1)];
                if (op != 8) vi = vi + 1;
                if (op == 3) li = j;
            end
            if (li < 0) begin
                $display("FAIL no linear layer in %0s", memdir);
                $finish;
            end
            wbits = desc[32 * (li + 1) + 1];
            w_base = desc[32 * (li + 1) + 21];
            wpr = desc[32 * (li + 1) + 22];
            cb_base = desc[32 * (li + 1) + 23];
            bias_base = desc[32 * (li + 1) + 24];
            ic = desc[32 * (li + 1) + 9]; ih = desc[32 * (li + 1) + 10]; iw = desc[32 * (li + 1) + 11];
            n_in = ic * ih * iw;
            n_out = desc[32 * (li + 1) + 12];
            // the classifier is the last tensor of the vectors; its input the one before
            $sformat(fname, "%0s/%02d_linear_logits.hex", vecdir, vi);
            $readmemh(fname, vout);
            fd = 0;
            $sformat(fname, "%0s/%02d_gap_levels.hex", vecdir, vi - 1);
            fd = $fopen(fname, "r");
            if (fd == 0) $sformat(fname, "%0s/%02d_maxpool_levels.hex", vecdir, vi - 1);
            else $fclose(fd);
            $readmemh(fname, vin);
            for (img = 0; img < images; img = img + 1) begin
                // NHWC vectors -> the file's [c][h][w] feature order
                for (c = 0; c < ic; c = c + 1)
                    for (y = 0; y < ih; y = y + 1)
                        for (x = 0; x < iw; x = x + 1)
                            feat[(c * ih + y) * iw + x] = vin[img * n_in + (y * iw + x) * ic + c][7:0];
                run_image;
            end
        end else begin
            // FORMAT.md §10: levels -4,-1,1,4; indices [[0,1,2,3],[3,2,1,0]]; bias 100,-100
            levels[0] = -8'sd4; levels[1] = -8'sd1; levels[2] = 8'sd1; levels[3] = 8'sd4;
            cb_base = 0; bias_base = 0; w_base = 0;
            bias[0] = 100; bias[1] = -100;
            words[0] = 64'h00E4; words[1] = 64'h001B;
            wbits = 2; wpr = 1; n_in = 4; n_out = 2;
            feat[0] = 1; feat[1] = 2; feat[2] = 3; feat[3] = 4;
            vout[0] = 100 - 4 - 2 + 3 + 16; vout[1] = -100 + 4 + 2 - 3 - 16;
            img = 0;
            run_image;
        end
        if (errors == 0) $display("PASS tb_linear checks=%0d", checks);
        else $display("FAIL tb_linear errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
