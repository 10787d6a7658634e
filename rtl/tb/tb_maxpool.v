// tb_maxpool: nuq_maxpool on random windows of every size 1..16 (values past n must be
// ignored), including windows of zeros and of 255.
`timescale 1ns/1ps
module tb_maxpool;
    localparam K = 16;
    reg [K*8-1:0] win;
    reg [7:0] n;
    wire [7:0] max;
    nuq_maxpool #(.KMAX2(K)) dut (.win(win), .n(n), .max(max));
    integer errors, checks, seed, i, k;
    reg [7:0] expect_v;
    initial begin
        errors = 0; checks = 0; seed = 17;
        for (i = 0; i < 5000; i = i + 1) begin
            n = 1 + i % K;
            for (k = 0; k < K; k = k + 1) win[8*k +: 8] = (i % 7 == 0) ? 8'd0 : (i % 11 == 0) ? 8'd255 : $random(seed);
            // a large value past the window must not count
            if (n < K) win[8*(K-1) +: 8] = 8'd255;
            #1;
            expect_v = 0;
            for (k = 0; k < n; k = k + 1) if (win[8*k +: 8] > expect_v) expect_v = win[8*k +: 8];
            checks = checks + 1;
            if (max !== expect_v) begin
                errors = errors + 1;
                if (errors < 5) $display("FAIL n=%0d got=%0d expected=%0d", n, max, expect_v);
            end
        end
        if (errors == 0) $display("PASS tb_maxpool checks=%0d", checks);
        else $display("FAIL tb_maxpool errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
