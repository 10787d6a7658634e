// tb_gap: nuq_gap streams channels of n = 1..70 and 64, 1024 levels and must give the
// integer model's (sum + n/2) / n (round half up), back to back without idle cycles.
`timescale 1ns/1ps
module tb_gap;
    reg clk = 0;
    always #5 clk = ~clk;
    reg rst, en, first, last;
    reg [7:0] din;
    reg [23:0] n;
    wire valid;
    wire [7:0] avg;
    nuq_gap dut (.clk(clk), .rst(rst), .en(en), .first(first), .last(last), .din(din), .n(n), .valid(valid), .avg(avg));
    integer errors, checks, seed, c, i, len, sum, pending;
    reg [7:0] expect_v;
    initial begin
        errors = 0; checks = 0; seed = 23; pending = 0;
        rst = 1; en = 0; first = 0; last = 0; din = 0; n = 1;
        @(posedge clk); #1 rst = 0;
        for (c = 0; c < 80; c = c + 1) begin
            len = (c < 70) ? c + 1 : (c < 75 ? 64 : 1024);
            n = len; sum = 0;
            for (i = 0; i < len; i = i + 1) begin
                din = (c % 9 == 0) ? 8'd255 : $random(seed);
                sum = sum + din;
                if (i == len - 1) expect_v = (sum + len / 2) / len;
                en = 1; first = (i == 0); last = (i == len - 1);
                @(posedge clk); #1;
                if (valid) begin
                    checks = checks + 1;
                    if (avg !== expect_v) begin
                        errors = errors + 1;
                        if (errors < 5) $display("FAIL channel %0d: got %0d expected %0d", c, avg, expect_v);
                    end
                end
            end
        end
        en = 0;
        @(posedge clk); #1;
        if (valid) begin
            checks = checks + 1;
            if (avg !== expect_v) errors = errors + 1;
        end
        if (checks != 80) begin
            errors = errors + 1;
            $display("FAIL %0d averages for 80 channels", checks);
        end
        if (errors == 0) $display("PASS tb_gap checks=%0d", checks);
        else $display("FAIL tb_gap errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
