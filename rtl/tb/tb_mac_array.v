// tb_mac_array: nuq_mac_array against a reference accumulator over random streams of dot
// products of random lengths 1..40 packed into P-lane windows the way the sequencer packs
// them (a window spans at most one output boundary), random u8 x i8 values including the
// extremes 255 and -128, random biases.
`timescale 1ns/1ps
module tb_mac_array;
    localparam P = 16;
    reg clk = 0;
    always #5 clk = ~clk;
    reg rst, en, start, finish;
    reg [P*8-1:0] act, wgt;
    reg [P-1:0] valid, seg;
    reg [31:0] bias_cur, bias_next;
    wire done;
    wire [31:0] result;
    nuq_mac_array #(.P(P)) dut (.clk(clk), .rst(rst), .en(en), .act(act), .wgt(wgt), .valid(valid),
        .seg(seg), .start(start), .bias_cur(bias_cur), .finish(finish), .bias_next(bias_next),
        .done(done), .result(result));

    integer errors, checks, seed, outs, q, len, pos, l, lens [0:255];
    reg [31:0] biases [0:255];
    reg [31:0] ref_acc [0:255];
    reg [31:0] expect_v;
    reg [7:0] a, w;
    integer got_q, segnow, stop;
    initial begin
        errors = 0; checks = 0; seed = 5;
        rst = 1; en = 0; start = 0; finish = 0; act = 0; wgt = 0; valid = 0; seg = 0;
        bias_cur = 0; bias_next = 0;
        @(posedge clk); #1 rst = 0;
        outs = 200;
        for (q = 0; q < outs; q = q + 1) begin
            lens[q] = 1 + ($random(seed) & 32'h7fff_ffff) % 40;
            biases[q] = $random(seed) % 100000;
            ref_acc[q] = biases[q];
        end
        q = 0; pos = 0; got_q = 0;
        bias_cur = biases[0];
        start = 1;
        while (q < outs) begin
            valid = 0; seg = 0; finish = 0; segnow = 0; stop = 0;
            bias_next = (q + 1 < outs) ? biases[q + 1] : 0;
            for (l = 0; l < P; l = l + 1) begin
                if (q + segnow >= outs) stop = 1;
                if (segnow == 1 && pos == lens[q + 1] - 1) stop = 1;
                if (!stop) begin
                    a = $random(seed); w = $random(seed);
                    if (($random(seed) & 15) == 0) a = 8'd255;
                    if (($random(seed) & 15) == 0) w = 8'h80;
                    act[8*l +: 8] = a; wgt[8*l +: 8] = w;
                    valid[l] = 1; seg[l] = segnow;
                    ref_acc[q + segnow] = ref_acc[q + segnow] + {24'd0, a} * {{24{w[7]}}, w};
                    pos = pos + 1;
                    if (segnow == 0 && pos == lens[q]) begin
                        finish = 1; segnow = 1; pos = 0;
                    end
                end
            end
            en = 1;
            @(posedge clk); #1;
            start = 0;
            if (finish) q = q + 1;
            if (done) begin
                checks = checks + 1;
                if (result !== ref_acc[got_q]) begin
                    errors = errors + 1;
                    if (errors < 5) $display("FAIL output %0d: got %0d expected %0d", got_q, $signed(result), $signed(ref_acc[got_q]));
                end
                got_q = got_q + 1;
            end
        end
        en = 0;
        @(posedge clk); #1;
        if (done) begin
            checks = checks + 1;
            if (result !== ref_acc[got_q]) errors = errors + 1;
            got_q = got_q + 1;
        end
        if (got_q != outs) begin
            errors = errors + 1;
            $display("FAIL %0d results for %0d outputs", got_q, outs);
        end
        if (errors == 0) $display("PASS tb_mac_array checks=%0d", checks);
        else $display("FAIL tb_mac_array errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
